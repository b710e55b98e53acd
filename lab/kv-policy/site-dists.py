"""Markdown for DATA.md from a shards run's meta.json: every site-packages distribution kept (version, licence
as its METADATA declares it, files) and every one dropped by the licence filter, plus the held-out ones.

    python3 lab/kv-policy/site-dists.py shards-meta.json > table.md
"""
import json
import sys

meta = json.load(open(sys.argv[1]))
kept, dropped, held = meta.get("site_dists", {}), meta.get("dropped_dists", {}), set(meta.get("val_site_packages", []))
print(f"{len(kept)} distributions kept, {len(dropped)} dropped by the licence filter; "
      f"train/val tokens {meta['total_tokens'].get('train', 0):,} / {meta['total_tokens'].get('val', 0):,}.\n")
print("| distribution | version | licence (METADATA) | split | .py files |")
print("|---|---|---|---|---|")
for name, d in sorted(kept.items()):
    lic = d["licence"].replace("|", "\\|").replace("\n", " ")
    print(f"| {name} | {d['version']} | {lic} | {'val' if name in held else 'train'} | {d['files']:,} |")
if dropped:
    print("\nDropped (licence not permissive or unknown): " +
          "; ".join(f"{n} ({str(l).replace('|', '/')})" for n, l in sorted(dropped.items())) + ".")
