"""Inbound adapters: the formats job boards and career sites already speak (Indeed Apply, Standard
Webhooks–signed canonical JSON, career-site multipart forms), each translated into the canonical
`ApplicationIn` and handed to `Intake.accept` like the canonical API. One module per format;
`mapping` holds what they share (secrets, names, jobs, question and option mapping)."""
