#!/usr/bin/env python3
"""Trunk post-build hook: puts the hash of every inline <script> of the built index.html (Trunk's loader,
whose text names the hashed .js and .wasm files, so it changes with each build) into the page's
Content-Security-Policy, in place of 'TRUNK_LOADER_HASH'. The policy itself is written in index.html."""
import base64, hashlib, os, re, sys

path = os.path.join(os.environ.get("TRUNK_STAGING_DIR", sys.argv[1] if len(sys.argv) > 1 else "dist"), "index.html")
html = open(path, encoding="utf-8").read()
scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
hashes = " ".join("'sha256-%s'" % base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() for s in scripts)
if "'TRUNK_LOADER_HASH'" not in html or not hashes:
    sys.exit(f"csp-hash.py: {path} has no 'TRUNK_LOADER_HASH' placeholder or no inline script")
open(path, "w", encoding="utf-8").write(html.replace("'TRUNK_LOADER_HASH'", hashes))
print(f"csp-hash.py: allowed {len(scripts)} inline script(s) by hash")
