#!/usr/bin/env bash
# make demo: the seed's story, told by the real Packer against the local AWS twin, with amiguard
# standing in for `packer` through a symlink on PATH (what `alias packer=amiguard` does).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

cargo build --quiet
work=$(mktemp -d)
twin_pid=""
cleanup() {
  [ -n "$twin_pid" ] && kill -TERM "$twin_pid" 2>/dev/null && wait "$twin_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The twin: moto's server plus amiguard's EBS encryption rules, on a free loopback port.
python3 tests/twin/twin.py --endpoint-file "$work/endpoint" >/dev/null 2>"$work/twin.log" &
twin_pid=$!
for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
endpoint=$(cat "$work/endpoint")
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=ap-northeast-1
export AWS_ENDPOINT_URL=$endpoint CHECKPOINT_DISABLE=1
unset AWS_PROFILE AMIGUARD_INTENT AMIGUARD_KMS_KEY

# The account, as in the seed: EBS encryption by default on with the AWS managed key, a team key
# alias/golden in both Regions, an unencrypted source AMI and an encrypted one.
scenario=$(python3 tests/twin/scenario.py --endpoint "$endpoint" --region ap-northeast-1 \
  --region us-east-1 --ebd on --cmk-alias alias/golden --extra-source aws-managed)
source_ami=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["source_ami"])' "$scenario")
encrypted_ami=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["extra_source_ami"])' "$scenario")

# `packer` is amiguard now: a symlink first on PATH, the real Packer behind it.
mkdir "$work/bin"
ln -s "$repo/target/debug/amiguard" "$work/bin/packer"
export PATH="$work/bin:$PATH"
twin_vars=(-var "endpoint=$endpoint" -var communicator=none -var skip_region_validation=true)
cd "$work"
cp "$repo/templates/golden-shared.pkr.hcl" "$repo/templates/multi-region.json" .

bold "The account: EBS encryption by default is ON in ap-northeast-1 and us-east-1, with the AWS managed key."
say "\$ packer version    # amiguard passes it straight through"
packer version

bold "1. A golden image shared with account 210987654321, as the seed built it."
say "   Plain Packer would build for minutes, then fail at the sharing step. amiguard:"
say "\$ packer build -var 'share_with=[\"210987654321\"]' -var source_ami=$source_ami golden-shared.pkr.hcl"
start=$(date +%s%N)
set +e
packer build -color=false -var 'share_with=["210987654321"]' -var "source_ami=$source_ami" "${twin_vars[@]}" golden-shared.pkr.hcl
code=$?
set -e
launched=$(python3 "$repo/tests/twin/inspect_twin.py" --endpoint "$endpoint" instances ap-northeast-1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
say "-> exit $code after $(ms "$start") ms; instances launched: $launched"

bold "2. The same build with the team's customer managed key: injected into a temporary copy, built, verified."
say "\$ packer build --kms-key alias/golden -var 'share_with=[\"210987654321\"]' ... golden-shared.pkr.hcl"
packer build -color=false --kms-key alias/golden --report report.json -var 'share_with=["210987654321"]' \
  -var "source_ami=$source_ami" "${twin_vars[@]}" golden-shared.pkr.hcl
say "-> exit $?; the report says: $(python3 -c 'import json; print(json.load(open("report.json"))["verdict"])')"
say "   golden-shared.pkr.hcl is unchanged: $(git -C "$repo" diff --quiet -- templates && cmp -s golden-shared.pkr.hcl "$repo/templates/golden-shared.pkr.hcl" && echo yes)"

bold "3. An unencrypted image wanted, from an encrypted source AMI: refused, with the reason."
say "\$ packer build --intent unencrypted -var source_ami=$encrypted_ami multi-region.json"
start=$(date +%s%N)
set +e
packer build --intent unencrypted -var "source_ami=$encrypted_ami" "${twin_vars[@]}" multi-region.json
code=$?
set -e
say "-> exit $code after $(ms "$start") ms"

bold "Done: the twin is stopped and every temporary file removed."
