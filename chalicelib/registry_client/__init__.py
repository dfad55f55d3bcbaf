"""A client of the OCI distribution API (`/v2`), one module per registry operation, over plain
urllib3 with connection pooling and streaming: ping and the auth challenge (`transport`, `auth`),
blobs, uploads (resumable, cross-repository mount), manifests (raw bytes), tags (paged) and
referrers (the API, else the OCI 1.1 fallback tag). No dependency beyond what boto3 brings."""
