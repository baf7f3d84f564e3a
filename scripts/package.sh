#!/usr/bin/env bash
# The test-signed driver package, made on Linux (`cargo make package`; CI: .ci/steps/40-package.sh):
# target/package/odxflt/ with
#   odxflt.inf   stamped from inf/odxflt.inx as stampinf does (DriverVer = the commit's date and
#                the crate's version, CatalogFile = odxflt.cat, $ARCH$ = amd64)   [odx-package]
#   odxflt.sys   the cross-built image (scripts/cross-build-driver.sh), Authenticode-signed with
#                SHA-256 and page hashes                                           [osslsigncode]
#   odxflt.cat   the catalog of odxflt.inf and odxflt.sys (SHA-1 and SHA-256 entries, PE
#                Authenticode hash for the image) written by odx-package, signed by osslsigncode
#   odxflt-test.cer  the public half of a test certificate made here with openssl, never
#                committed (key and certificate stay in target/package-signing/)
#   odxctl.exe   the Windows 8 build (scripts/windows-odxctl.sh), signed the same way
#   install.ps1, uninstall.ps1, tests\vm\odx-vm-test.ps1, README.txt (tests/vm/)
# and fails unless osslsigncode verifies both signatures against the test certificate, finds the
# image's hash in the catalog (`verify -catalog`), odx-package parses the signed catalog back to
# exactly the files' hashes, and openssl's own ASN.1 dump of the catalog holds the INF's sha1sum
# and sha256sum. The Windows half of the same flow is cargo-wdk's (Makefile.toml, docs/driver.md).
#   ODXFLT_NO_APT=1 scripts/package.sh      # never call apt-get
#   OSSLSIGNCODE=/path/osslsigncode scripts/package.sh   # another osslsigncode build
# Reproducible inputs: DriverVer's date and the catalog's time come from SOURCE_DATE_EPOCH, else
# the commit's time. The signatures' signing time is the build's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pkg="$root/target/package/odxflt"
work="$root/target/package-work"
keys="$root/target/package-signing"
image="$root/target/x86_64-pc-windows-msvc/release/odxflt.sys"
osslsigncode=${OSSLSIGNCODE:-osslsigncode}
say() { printf 'package: %s\n' "$*"; }
fail() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }
start=$SECONDS

. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-packages.sh"
ensure_debian_packages package osslsigncode openssl
say "$("$osslsigncode" --version 2>&1 | head -n1), $(openssl version)"

# The inputs: the driver image and odxctl.exe (built when missing; `cargo make package` builds
# both first).
[ -f "$image" ] || bash scripts/cross-build-driver.sh
exe=$(bash scripts/windows-odxctl.sh | tail -n1)
cargo build --quiet -p odx-package
tool="$root/target/debug/odx-package"

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)

# --- the test certificate (once per target/ directory) -------------------------------------------
if [ ! -f "$keys/odxflt-test.key" ] || [ ! -f "$keys/odxflt-test.pem" ]; then
  mkdir -p "$keys"
  chmod 700 "$keys"
  openssl req -x509 -newkey rsa:3072 -sha256 -days 3650 -nodes \
    -keyout "$keys/odxflt-test.key" -out "$keys/odxflt-test.pem" \
    -subj "/O=odxflt project/CN=odxflt test signing (untrusted, made by the package build)" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=codeSigning" \
    -addext "subjectKeyIdentifier=hash" >"$keys/openssl.log" 2>&1 ||
    { cat "$keys/openssl.log" >&2; rm -f "$keys/odxflt-test.key" "$keys/odxflt-test.pem"; fail "openssl req"; }
  say "made a test certificate in ${keys#"$root"/}"
fi
cert="$keys/odxflt-test.pem"
key="$keys/odxflt-test.key"
say "test certificate: $(openssl x509 -in "$cert" -noout -subject -fingerprint -sha1 | tr '\n' ' ')"

rm -rf "$pkg" "$work"
mkdir -p "$pkg/tests/vm" "$work"

# --- INF -----------------------------------------------------------------------------------------
"$tool" stamp-inf inf/odxflt.inx "$pkg/odxflt.inf" --manifest driver/Cargo.toml --epoch "$epoch"

# --- sign: odxflt.sys (SHA-256, page hashes), odxctl.exe -----------------------------------------
sign() { # IN OUT [extra osslsigncode options]
  local in=$1 out=$2; shift 2
  "$osslsigncode" sign -certs "$cert" -key "$key" -h sha256 -n "odxflt $version" "$@" \
    -in "$in" -out "$out" >"$work/sign.log" 2>&1 || { cat "$work/sign.log" >&2; fail "osslsigncode sign $in"; }
}
verify() { # FILE [extra osslsigncode options]: prints osslsigncode's report to $work/verify-NAME.log
  local file=$1 log="$work/verify-$(basename "$1").log"; shift
  if ! "$osslsigncode" verify -CAfile "$cert" "$@" -in "$file" >"$log" 2>&1 ||
     ! grep -q "Signature verification: ok" "$log"; then
    sed 's/^/  /' "$log" >&2
    fail "osslsigncode verify $* $(basename "$file")"
  fi
}
sign "$image" "$pkg/odxflt.sys" -ph
verify "$pkg/odxflt.sys"
grep -qi "page hash" "$work/verify-odxflt.sys.log" || fail "odxflt.sys carries no page hashes"
sys_digest=$(sed -n 's/^Calculated message digest *: *\([0-9A-Fa-f]*\).*/\1/p' "$work/verify-odxflt.sys.log" | head -n1 | tr 'A-F' 'a-f')
[ ${#sys_digest} -eq 64 ] || fail "no SHA-256 message digest in osslsigncode's report for odxflt.sys"
say "odxflt.sys signed: SHA-256 Authenticode digest $sys_digest (osslsigncode), page hashes, verified"
sign "$exe" "$pkg/odxctl.exe"
verify "$pkg/odxctl.exe"

# --- catalog -------------------------------------------------------------------------------------
"$tool" catalog "$pkg/odxflt.inf" "$work/odxflt.unsigned.cat" --epoch "$epoch"
sign "$work/odxflt.unsigned.cat" "$pkg/odxflt.cat"
verify "$pkg/odxflt.cat"
verify "$pkg/odxflt.sys" -catalog "$pkg/odxflt.cat"
grep -q "File is signed in catalog" "$work/verify-odxflt.sys.log" || fail "osslsigncode did not match odxflt.sys against the catalog"
say "odxflt.cat signed and verified; osslsigncode finds odxflt.sys's digest in it"
"$tool" check "$pkg" | tee "$work/check.log"
grep -q "odxflt.sys: PE Authenticode SHA-1 [0-9a-f]* SHA-256 $sys_digest" "$work/check.log" ||
  fail "the catalog's SHA-256 entry for odxflt.sys is not osslsigncode's digest $sys_digest"
asn1=$(openssl asn1parse -inform DER -in "$pkg/odxflt.cat")
for h in "$(sha1sum "$pkg/odxflt.inf" | cut -d' ' -f1)" "$(sha256sum "$pkg/odxflt.inf" | cut -d' ' -f1)" "$sys_digest"; do
  grep -qi "HEX DUMP\]:$h\$" <<<"$asn1" || fail "openssl asn1parse finds no OCTET STRING $h in odxflt.cat"
done
say "openssl asn1parse of odxflt.cat: the INF's sha1sum and sha256sum and the image's digest are there"

# --- the rest of the folder ----------------------------------------------------------------------
openssl x509 -in "$cert" -outform DER -out "$pkg/odxflt-test.cer"
cp tests/vm/install.ps1 tests/vm/uninstall.ps1 "$pkg/"
cp tests/vm/odx-vm-test.ps1 "$pkg/tests/vm/"
driver_ver=$(sed -n 's/^DriverVer *= *\([^[:space:]]*\).*/\1/p' "$pkg/odxflt.inf" | tr -d '\r')
sed -e "s|@VERSION@|$version|; s|@DRIVERVER@|$driver_ver|; s|@COMMIT@|$commit|" tests/vm/package-README.txt |
  sed 's/$/\r/' >"$pkg/README.txt"
for f in odxflt.inf odxflt.sys odxflt.cat odxflt-test.cer odxctl.exe install.ps1 uninstall.ps1 README.txt tests/vm/odx-vm-test.ps1; do
  [ -s "$pkg/$f" ] || fail "$f is missing from the package"
done
(cd "$pkg" && find . -type f | sort | while read -r f; do printf '  %8s  %s\n' "$(stat -c %s "$f")" "${f#./}"; done)
say "${pkg#"$root"/} ready in $((SECONDS - start)) s (DriverVer $driver_ver)"
