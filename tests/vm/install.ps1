<#
.SYNOPSIS
  Installs the test-signed odxflt package on a Windows 8 / 8.1 / 10 / 11 x64 test VM and loads
  the filter. Run elevated from the package folder (target\package\odxflt, from `cargo make
  package`); `cargo make deploy` runs it.
.DESCRIPTION
  1. Test signing: if it is not active, turns it on (bcdedit /set testsigning on) and asks to
     reboot; run the script again after the reboot. Secure Boot must be off (VM firmware).
  2. Trusts the package's test certificate(s) (*.cer: odxflt-test.cer from the Linux build,
     WDRLocalTestCert.cer from cargo-wdk) in LocalMachine\Root and LocalMachine\TrustedPublisher,
     so the catalog verifies and the driver store accepts the package.
  3. Installs odxflt.inf as a primitive driver through the driver store on Windows 10 1903 and
     later (pnputil /add-driver odxflt.inf /install: build 25952+ takes the INF's
     DefaultInstall.NTamd64.10.0...25952 section, the binary runs from the driver store;
     earlier builds take DefaultInstall.NTamd64), and with SetupAPI's InstallHinfSection
     DefaultInstall on Windows 8 / 8.1 / 10 before 1903, as Microsoft's minifilter samples are.
  4. Checks SupportedFeatures = 3 and DefaultPolicy in the key that variant writes.
  5. fltmc load odxflt; lists the filter and its instances; odxctl.exe stats when it is there.
.PARAMETER Package
  The package folder (default: this script's folder).
.PARAMETER Reboot
  Reboot without asking when test signing has to be turned on.
#>
param(
  [string]$Package = $PSScriptRoot,
  [switch]$Reboot
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 2

function Say([string]$text) { Write-Host "install: $text" }

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object Security.Principal.WindowsPrincipal $identity
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  throw "run this from an elevated PowerShell (Run as administrator)"
}

$Package = (Resolve-Path $Package).Path
$inf = Join-Path $Package "odxflt.inf"
foreach ($name in "odxflt.inf", "odxflt.sys", "odxflt.cat") {
  if (-not (Test-Path (Join-Path $Package $name))) { throw "missing $name in $Package" }
}
$certificates = @(Get-ChildItem -Path $Package -Filter *.cer)
if ($certificates.Count -eq 0) { throw "no test certificate (*.cer) in $Package" }

# --- 1. test signing ---------------------------------------------------------------------------
# Active for this boot: the loader's options (SystemStartOptions) name TESTSIGNING. Configured
# for the next boot: bcdedit's {current} entry has "testsigning Yes".
$options = (Get-ItemProperty "HKLM:\SYSTEM\CurrentControlSet\Control").SystemStartOptions
$active = $options -match "TESTSIGNING"
if (-not $active) {
  $secureBoot = $false
  try { $secureBoot = Confirm-SecureBootUEFI } catch { $secureBoot = $false }
  if ($secureBoot) {
    throw "Secure Boot is on: test-signed drivers cannot load. Turn Secure Boot off in the VM's firmware settings, then run this again."
  }
  $configured = (bcdedit /enum "{current}" | Out-String) -match "(?im)^testsigning\s+(Yes|On)"
  if (-not $configured) {
    bcdedit /set testsigning on | Out-Null
    if ($LASTEXITCODE) { throw "bcdedit /set testsigning on failed ($LASTEXITCODE)" }
    Say "test signing turned on for the next boot"
  }
  Say "test signing is not active yet: reboot, then run install.ps1 again"
  $answer = if ($Reboot) { "y" } else { Read-Host "Reboot now? [y/N]" }
  if ($answer -match "^(y|yes)$") { Restart-Computer -Force }
  exit 3010   # ERROR_SUCCESS_REBOOT_REQUIRED
}
Say "test signing is active"

# --- 2. trust the test certificate -------------------------------------------------------------
foreach ($cer in $certificates) {
  foreach ($store in "Root", "TrustedPublisher") {
    certutil -f -addstore $store $cer.FullName | Out-Null
    if ($LASTEXITCODE) { throw "certutil -addstore $store $($cer.Name) failed ($LASTEXITCODE)" }
  }
  $thumbprint = (New-Object Security.Cryptography.X509Certificates.X509Certificate2 $cer.FullName).Thumbprint
  Say "trusted $($cer.Name) ($thumbprint) in Root and TrustedPublisher"
}

# --- 3. install the INF ------------------------------------------------------------------------
cmd /c "fltmc unload odxflt >nul 2>&1"   # a previous build, if loaded (native stderr must not reach $ErrorActionPreference)
$build = [int](Get-ItemProperty "HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion").CurrentBuildNumber
if ($build -ge 18362) {
  # Windows 10 1903+: a primitive driver, installed and tracked by the driver store.
  pnputil /add-driver $inf /install
  if ($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne 3010) { throw "pnputil /add-driver $inf /install failed ($LASTEXITCODE)" }
  Say "installed through the driver store (pnputil, build $build)"
} else {
  rundll32.exe "setupapi.dll,InstallHinfSection" DefaultInstall 132 $inf
  Start-Sleep -Seconds 3   # rundll32 returns before SetupAPI is done
  Say "installed with InstallHinfSection DefaultInstall (build $build)"
}

# --- 4. the registry the INF wrote -------------------------------------------------------------
$service = "HKLM:\SYSTEM\CurrentControlSet\Services\odxflt"
if (-not (Test-Path $service)) { throw "the odxflt service key was not created ($service)" }
$featuresKey = if ($build -ge 25952) { "$service\Parameters" } else { $service }
$features = (Get-ItemProperty $featuresKey -ErrorAction SilentlyContinue).SupportedFeatures
if ($features -ne 3) { throw "SupportedFeatures in $featuresKey is '$features', expected 3" }
$policy = (Get-ItemProperty "$service\Parameters" -ErrorAction SilentlyContinue).DefaultPolicy
Say "SupportedFeatures = 3 ($featuresKey), DefaultPolicy = $policy"

# --- 5. load -----------------------------------------------------------------------------------
fltmc load odxflt
if ($LASTEXITCODE) {
  # 0x80070241 (577): the image's signature was not accepted (test signing, certificate);
  # 0x801F0012: a filter with this name is already loaded.
  throw ("fltmc load odxflt failed (0x{0:X8})" -f $LASTEXITCODE)
}
fltmc filters
fltmc instances -f odxflt
$odxctl = Join-Path $Package "odxctl.exe"
if (Test-Path $odxctl) {
  & $odxctl stats
  if ($LASTEXITCODE) { throw "odxctl stats failed ($LASTEXITCODE)" }
}
Say "odxflt is loaded. Next: powershell -ExecutionPolicy Bypass -File tests\vm\odx-vm-test.ps1"
