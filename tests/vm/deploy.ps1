<#
.SYNOPSIS
  Installs the test-signed odxflt package on a Windows VM with test signing on, loads the
  filter and lists its instances. Run elevated. `cargo make deploy` calls it.
.PARAMETER Package
  The folder with odxflt.sys, odxflt.inf, odxflt.cat and WDRLocalTestCert.cer (the output of
  `cargo make driver-package`, copied to the VM).
#>
param([string]$Package = "target\package\odxflt")
$ErrorActionPreference = "Stop"

function Require-Admin {
  $id = [Security.Principal.WindowsIdentity]::GetCurrent()
  if (-not (New-Object Security.Principal.WindowsPrincipal $id).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw "run elevated"
  }
}
Require-Admin

$bcd = bcdedit /enum "{current}" | Out-String
if ($bcd -notmatch "testsigning\s+Yes") {
  throw "test signing is off: run 'bcdedit /set testsigning on' and reboot"
}

$inf = Join-Path $Package "odxflt.inf"
$cer = Join-Path $Package "WDRLocalTestCert.cer"
foreach ($f in $inf, (Join-Path $Package "odxflt.sys"), (Join-Path $Package "odxflt.cat"), $cer) {
  if (-not (Test-Path $f)) { throw "missing $f" }
}

# Trust the test certificate (root + trusted publisher) so the catalog and the image verify.
certutil -f -addstore Root $cer | Out-Null
certutil -f -addstore TrustedPublisher $cer | Out-Null

# Unload a previous build first (ignore "not loaded").
fltmc unload odxflt 2>$null | Out-Null

# Windows 11 24H2+ processes the INF's DefaultInstall through pnputil; earlier Windows through
# setupapi's InstallHinfSection, as Microsoft's minifilter samples are installed.
$build = [int](Get-ItemProperty "HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion").CurrentBuildNumber
if ($build -ge 25952) {
  pnputil /add-driver $inf /install
  if ($LASTEXITCODE) { throw "pnputil /add-driver failed ($LASTEXITCODE)" }
} else {
  rundll32.exe setupapi.dll,InstallHinfSection DefaultInstall 132 (Resolve-Path $inf).Path
  Start-Sleep -Seconds 2
}

$features = if ($build -ge 25952) {
  (Get-ItemProperty HKLM:\SYSTEM\CurrentControlSet\Services\odxflt\Parameters).SupportedFeatures
} else {
  (Get-ItemProperty HKLM:\SYSTEM\CurrentControlSet\Services\odxflt).SupportedFeatures
}
if ($features -ne 3) { throw "SupportedFeatures is '$features', expected 3" }

fltmc load odxflt
if ($LASTEXITCODE) { throw "fltmc load odxflt failed ($LASTEXITCODE)" }
fltmc filters
fltmc instances -f odxflt
