#!/usr/bin/env bash
# CI's check that the committed designer bundle is the build of the committed source:
# installs exactly the lockfile's packages, checks formatting and types, rebuilds
# static/designer/, and fails if that differs from what git has committed.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null || ! node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  process.exit(major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19) ? 0 : 1);'; then
    echo "The designer build needs Node.js 20.19+ or 22.12+ (found: $(node --version 2>/dev/null || echo none))." >&2
    exit 1
fi
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "check-bundle.sh must run in a git checkout" >&2; exit 1; }

npm ci --no-audit --no-fund
npm run format-check
npm run build

cd ..
untracked=$(git ls-files --others --exclude-standard -- static/designer)
if ! git diff --quiet HEAD -- static/designer || [ -n "$untracked" ]; then
    echo >&2
    echo "static/designer/ is not the build of frontend/: run 'make bundle' and commit static/designer/." >&2
    git status --short -- static/designer >&2
    exit 1
fi
echo "static/designer/ is the build of frontend/."
