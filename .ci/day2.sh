#!/usr/bin/env bash
# Day 2: the suite survives the next revisions, with no test edited.
#
# In a temporary copy of this checkout, put on top of head two revisions written as a user writes them
# with plain op.* (.ci/day2/additive.py, then .ci/day2/contract.py, their ids the project's next ones),
# edit the copy's models to match (.ci/day2/models.py), regenerate the expected-schema files with
# `outbound-schema snapshot`, and run the whole suite (the README's pytest) there, importing the copy's
# package. Fails if any test fails; prints pytest's summary line and how long it all took.
#
# Needs the checkout's .venv (.ci/run makes it), or the virtualenv DAY2_VENV names (.ci/run's on Python
# 3.13: the copy's venv is made by that venv's Python). Arguments are passed on to pytest (e.g. a --junitxml
# with an absolute path, or test files); pytest runs in the copy, so a relative path in PYTEST_ADDOPTS
# lands there and goes with it. DAY2_REVISIONS=additive (or contract) puts that one alone;
# DAY2_KEEP=1 keeps the copy and its venv, and says where.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
start=$SECONDS
outer_venv=${DAY2_VENV:-$root/.venv}
outer_python="$outer_venv/bin/python"
[ -x "$outer_python" ] || { echo "day2: no $outer_venv (make .venv with the README's test command)" >&2; exit 2; }
echo "day2: on $("$outer_python" -c 'import platform; print("Python", platform.python_version())') from $outer_venv"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/outbound-schema-day2.XXXXXX")
chmod 755 "$tmp"  # as a checkout is: the embedded server's own user works in it (mktemp makes it 0700)
cleanup() { if [ -n "${DAY2_KEEP:-}" ]; then echo "day2: kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
copy="$tmp/repo"

# 1. The copy: the checkout's files as git knows them (committed or not, untracked ones not ignored),
#    no .venv, no caches but mypy's (its entries are checked against the files' hashes).
"$root/.ci/copy-checkout.sh" "$copy"
[ -d "$root/.mypy_cache" ] && cp -r "$root/.mypy_cache" "$copy/.mypy_cache"

# 2. A virtualenv that imports the copy and nothing of the checkout: a .pth naming the copy, then the
#    checkout venv's site-packages as a plain folder (so its own .pth files, among them the editable
#    install of the checkout, are not read); its console scripts rewritten to start this venv's Python.
venv="$tmp/venv"
"$outer_python" -m venv --without-pip "$venv"
outer_site=$("$outer_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n%s\n' "$copy" "$outer_site" >"$site/_day2_copy.pth"
for script in "$outer_venv/bin/"*; do
  name=$(basename "$script")
  case "$name" in python* | activate* | Activate* | pip*) continue ;; esac
  if head -c 2 "$script" | grep -q '^#!'; then
    sed "1s|^#!.*|#!$venv/bin/python|" "$script" >"$venv/bin/$name" && chmod +x "$venv/bin/$name"
  else
    ln -s "$script" "$venv/bin/$name"  # a native program (ruff, squawk)
  fi
done
python="$venv/bin/python"
imported=$(cd / && env -i "$python" -c 'import outbound_schema, tests; print(outbound_schema.__file__, tests.__file__)')
case "$imported" in
  "$copy/outbound_schema/__init__.py $copy/tests/__init__.py") echo "day2: imports the copy: $imported" ;;
  *) echo "day2: the copy's venv imports $imported, not the copy in $copy" >&2; exit 1 ;;
esac

# 3. The revisions on top of head, with the next ids, as `alembic revision` names them.
add() {  # template slug
  (cd "$copy" && "$python" - "$1" "$2" <<'PY'
import re, sys
from pathlib import Path
from alembic.script import ScriptDirectory
from outbound_schema.revisions import next_revision_id

template, slug = Path(sys.argv[1]), sys.argv[2]
(head,) = ScriptDirectory("alembic").get_heads()
revision = next_revision_id([head])
source = re.sub(r"(?m)^revision = .*$", f'revision = "{revision}"', template.read_text())
source = re.sub(r"(?m)^down_revision = .*$", f'down_revision = "{head}"', source)
Path("alembic/versions", f"{revision}_{slug}.py").write_text(source)
print(f"day2: {revision} ({slug}) on top of {head}")
PY
  )
}
kinds=(${DAY2_REVISIONS:-additive contract})  # one of them alone, to see what it alone breaks
for kind in "${kinds[@]}"; do
  case "$kind" in
    additive) add "$root/.ci/day2/additive.py" day2_dial_attempts ;;
    contract) add "$root/.ci/day2/contract.py" day2_drop_call_sid ;;
    *) echo "day2: DAY2_REVISIONS: unknown revision $kind (additive, contract)" >&2; exit 2 ;;
  esac
done

# 4. The models to match, formatted as a user's editor would; the expected-schema files regenerated.
"$python" "$root/.ci/day2/models.py" "$copy/outbound_schema/models.py" "${kinds[@]}"
"$venv/bin/ruff" format -q --config "$copy/pyproject.toml" "$copy/outbound_schema/models.py"
(cd "$copy" && env -u DATABASE_URL OUTBOUND_SCHEMA_EMBEDDED_DIR="$tmp/snapshot-pg" \
  "$venv/bin/outbound-schema" snapshot) || { echo "day2: outbound-schema snapshot failed" >&2; exit 1; }
echo "day2: setup done in $((SECONDS - start)) s; running the suite in $copy"

# 5. The whole suite, in the copy, on the copy.
set +e
(cd "$copy" && "$python" -m pytest "$@" 2>&1) | tee "$tmp/pytest.log"
code=${PIPESTATUS[0]}
set -e
summary=$(grep -E '(passed|failed|error|no tests ran).* in [0-9.]+s' "$tmp/pytest.log" | tail -1 || true)
echo "day2: ${summary:-no pytest summary line} (exit $code, day2 took $((SECONDS - start)) s)"
exit "$code"
