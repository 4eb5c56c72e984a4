"""Attachment bytes out of Redis: the blob store (app/blobs/store.py)."""
