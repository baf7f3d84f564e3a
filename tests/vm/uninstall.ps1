<#
.SYNOPSIS
  Removes what install.ps1 installed: unloads odxflt, uninstalls its package, deletes the
  service if it is left, and removes the package's test certificate(s) from LocalMachine\Root
  and LocalMachine\TrustedPublisher. Run elevated from the package folder.
.DESCRIPTION
  Windows 10 1903 and later: the driver store's published INF (oemNN.inf whose original name is
  odxflt.inf) is removed with pnputil /delete-driver /uninstall /force, which undoes the
  primitive driver's install. Earlier Windows: SetupAPI's InstallHinfSection DefaultUninstall
  (the INF's LegacyUninstall section) and pnputil -d for a staged copy.
.PARAMETER Package
  The package folder (default: this script's folder): its *.cer name the certificates to remove.
.PARAMETER DisableTestSigning
  Also turn test signing off (bcdedit /set testsigning off; takes effect after a reboot).
#>
param(
  [string]$Package = $PSScriptRoot,
  [switch]$DisableTestSigning
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 2

function Say([string]$text) { Write-Host "uninstall: $text" }

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object Security.Principal.WindowsPrincipal $identity
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  throw "run this from an elevated PowerShell (Run as administrator)"
}
$Package = (Resolve-Path $Package).Path

# Published names (oemNN.inf) of driver-store packages whose original INF is odxflt.inf. DISM's
# Get-WindowsDriver (Windows 8 and later) names them without parsing pnputil's localized text.
function Get-OdxfltPublishedInf {
  @(Get-WindowsDriver -Online | Where-Object {
      [IO.Path]::GetFileName($_.OriginalFileName) -ieq "odxflt.inf"
    } | ForEach-Object { $_.Driver })
}

cmd /c "fltmc unload odxflt >nul 2>&1"
Say "odxflt unloaded (or was not loaded)"

$build = [int](Get-ItemProperty "HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion").CurrentBuildNumber
$published = Get-OdxfltPublishedInf
if ($build -ge 18362) {
  foreach ($oem in $published) {
    pnputil /delete-driver $oem /uninstall /force
    if ($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne 3010) { throw "pnputil /delete-driver $oem failed ($LASTEXITCODE)" }
    Say "removed $oem from the driver store"
  }
} else {
  $inf = Join-Path $Package "odxflt.inf"
  if (Test-Path $inf) {
    rundll32.exe "setupapi.dll,InstallHinfSection" DefaultUninstall 132 $inf
    Start-Sleep -Seconds 3
    Say "ran InstallHinfSection DefaultUninstall"
  }
  foreach ($oem in $published) {
    pnputil -d $oem | Out-Null
    Say "removed $oem from the driver store"
  }
}

if (Test-Path "HKLM:\SYSTEM\CurrentControlSet\Services\odxflt") {
  sc.exe delete odxflt | Out-Null
  Say "deleted the odxflt service (a reboot finishes it if the image was in use)"
}

foreach ($cer in @(Get-ChildItem -Path $Package -Filter *.cer)) {
  $thumbprint = (New-Object Security.Cryptography.X509Certificates.X509Certificate2 $cer.FullName).Thumbprint
  foreach ($store in "Root", "TrustedPublisher") {
    cmd /c "certutil -delstore $store $thumbprint >nul 2>&1"
  }
  Say "removed $($cer.Name) ($thumbprint) from Root and TrustedPublisher"
}

if ($DisableTestSigning) {
  bcdedit /set testsigning off | Out-Null
  if ($LASTEXITCODE) { throw "bcdedit /set testsigning off failed ($LASTEXITCODE)" }
  Say "test signing turned off for the next boot"
}
Say "done"
