<#
.SYNOPSIS
  End-to-end ODX checks for odxflt on a test-signed Windows VM (run elevated, after install.ps1).
.DESCRIPTION
  Creates and mounts a VHDX with a fresh NTFS volume, writes plain / compressed / sparse /
  encrypted files, makes sure odxflt is loaded and attached with SprtFtrs 0x3, then issues
  FSCTL_OFFLOAD_READ / FSCTL_OFFLOAD_WRITE through DeviceIoControl and checks the Win32 errors
  docs/driver.md lists. Exit code = number of failed checks.
#>
param(
  [string]$Vhdx = "$env:TEMP\odxflt-test.vhdx",
  [int]$SizeMB = 512,
  [switch]$Keep
)
$ErrorActionPreference = "Stop"

Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

public static class Odx {
    public const uint FSCTL_OFFLOAD_READ = 0x00094264;
    public const uint FSCTL_OFFLOAD_WRITE = 0x00098268;

    [DllImport("kernel32.dll", SetLastError = true)]
    static extern bool DeviceIoControl(SafeFileHandle h, uint code, byte[] input, int inputLength,
        byte[] output, int outputLength, out int returned, IntPtr overlapped);

    // FSCTL_OFFLOAD_READ_INPUT (32 bytes); returns the Win32 error (0 = success).
    public static int Read(SafeFileHandle h, ulong offset, ulong length, out byte[] output) {
        byte[] input = new byte[32];
        BitConverter.GetBytes(32u).CopyTo(input, 0);      // Size
        BitConverter.GetBytes(offset).CopyTo(input, 16);  // FileOffset
        BitConverter.GetBytes(length).CopyTo(input, 24);  // CopyLength
        output = new byte[528];
        int returned;
        return DeviceIoControl(h, FSCTL_OFFLOAD_READ, input, 32, output, 528, out returned, IntPtr.Zero)
            ? 0 : Marshal.GetLastWin32Error();
    }

    // FSCTL_OFFLOAD_WRITE_INPUT (544 bytes); returns the Win32 error (0 = success).
    public static int Write(SafeFileHandle h, ulong offset, ulong length, ulong transferOffset, byte[] token) {
        byte[] input = new byte[544];
        BitConverter.GetBytes(544u).CopyTo(input, 0);           // Size
        BitConverter.GetBytes(offset).CopyTo(input, 8);         // FileOffset
        BitConverter.GetBytes(length).CopyTo(input, 16);        // CopyLength
        BitConverter.GetBytes(transferOffset).CopyTo(input, 24); // TransferOffset
        Array.Copy(token, 0, input, 32, 512);
        byte[] output = new byte[16];
        int returned;
        return DeviceIoControl(h, FSCTL_OFFLOAD_WRITE, input, 544, output, 16, out returned, IntPtr.Zero)
            ? 0 : Marshal.GetLastWin32Error();
    }

    // STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA, big-endian type and id length (MAKE_ZERO_TOKEN).
    public static byte[] ZeroToken() {
        byte[] t = new byte[512];
        t[0] = 0xFF; t[1] = 0xFF; t[2] = 0x00; t[3] = 0x01; t[6] = 0x01; t[7] = 0xF8;
        return t;
    }
}
'@

$script:failures = 0
function Check([string]$name, [int]$got, [int[]]$want) {
  if ($want -contains $got) { Write-Host "PASS  $name -> $got" }
  else { Write-Host "FAIL  $name -> $got (expected $($want -join ' or '))"; $script:failures++ }
}
function Open([string]$path, [IO.FileAccess]$access) {
  [IO.File]::Open($path, [IO.FileMode]::Open, $access, [IO.FileShare]::ReadWrite)
}
function New-DataFile([string]$path, [int]$bytes) {
  $data = New-Object byte[] $bytes
  (New-Object Random 42).NextBytes($data)
  [IO.File]::WriteAllBytes($path, $data)
}

# --- odxflt loaded ---------------------------------------------------------------------------
if (-not ((fltmc filters | Out-String) -match "(?m)^odxflt\s")) {
  fltmc load odxflt
  if ($LASTEXITCODE) { throw "odxflt is not loaded and fltmc load failed ($LASTEXITCODE)" }
}

# --- a fresh NTFS volume on a VHDX (diskpart: no Hyper-V module needed) ------------------------
if (Test-Path $Vhdx) { Remove-Item $Vhdx -Force }
$letter = (68..90 | ForEach-Object { [char]$_ } | Where-Object { -not (Test-Path "${_}:\") } | Select-Object -Last 1)
$dp = "$env:TEMP\odxflt-diskpart.txt"
@"
create vdisk file="$Vhdx" maximum=$SizeMB type=expandable
select vdisk file="$Vhdx"
attach vdisk
create partition primary
format fs=ntfs quick label=ODXTEST
assign letter=$letter
"@ | Set-Content -Encoding ascii $dp
diskpart /s $dp | Out-Null
if ($LASTEXITCODE) { throw "diskpart failed ($LASTEXITCODE)" }
$root = "${letter}:\"

try {
  # odxflt attaches automatically to new NTFS volumes (DefaultInstance, Flags 0); attach if not.
  if (-not ((fltmc instances -f odxflt | Out-String) -match "${letter}:")) { fltmc attach odxflt "${letter}:" | Out-Null }
  $instances = fltmc instances -v "${letter}:" | Out-String
  $line = ($instances -split "`r?`n" | Where-Object { $_ -match "^odxflt\s" } | Select-Object -First 1)
  if ($line -and $line -match "\b(0x)?0*3\b") { Write-Host "PASS  fltmc instances -v ${letter}: odxflt SprtFtrs 0x3" }
  else { Write-Host "FAIL  fltmc instances -v ${letter}: no odxflt line with SprtFtrs 0x3`n$instances"; $script:failures++ }

  $mb = 1024 * 1024
  $plain = Join-Path $root "plain.bin";         New-DataFile $plain $mb
  $dest = Join-Path $root "dest.bin";           New-DataFile $dest $mb
  $compressed = Join-Path $root "compressed.bin"; New-DataFile $compressed $mb
  compact.exe /c $compressed | Out-Null
  $sparse = Join-Path $root "sparse.bin";       New-DataFile $sparse $mb
  fsutil sparse setflag $sparse | Out-Null
  $encrypted = Join-Path $root "encrypted.bin"; New-DataFile $encrypted $mb
  cipher.exe /e $encrypted | Out-Null
  $efs = ((Get-Item $encrypted).Attributes -band [IO.FileAttributes]::Encrypted) -ne 0

  # File types NTFS (and odxflt, which asks the same facts) refuse: 4442 / 4443.
  $out = $null
  $f = Open $compressed Read;  Check "read  compressed" ([Odx]::Read($f.SafeFileHandle, 0, 65536, [ref]$out)) @(4442); $f.Close()
  $f = Open $sparse Read;      Check "read  sparse"     ([Odx]::Read($f.SafeFileHandle, 0, 65536, [ref]$out)) @(4442); $f.Close()
  if ($efs) {
    $f = Open $encrypted Read; Check "read  encrypted"  ([Odx]::Read($f.SafeFileHandle, 0, 65536, [ref]$out)) @(4442); $f.Close()
  } else { Write-Host "SKIP  read encrypted (EFS not available on this edition)" }
  $f = Open $compressed ReadWrite
  Check "write compressed" ([Odx]::Write($f.SafeFileHandle, 0, 65536, 0, [Odx]::ZeroToken())) @(4443); $f.Close()
  $f = Open $sparse ReadWrite
  Check "write sparse"     ([Odx]::Write($f.SafeFileHandle, 0, 65536, 0, [Odx]::ZeroToken())) @(4443); $f.Close()

  # Alignment: ERROR_INVALID_PARAMETER (87).
  $f = Open $plain Read
  Check "read  FileOffset 1"      ([Odx]::Read($f.SafeFileHandle, 1, 65536, [ref]$out)) @(87)
  Check "read  CopyLength 100"    ([Odx]::Read($f.SafeFileHandle, 0, 100, [ref]$out)) @(87)
  # End of file: ERROR_HANDLE_EOF (38).
  Check "read  at end of file"    ([Odx]::Read($f.SafeFileHandle, [uint64]$mb, 65536, [ref]$out)) @(38)
  # Zero length: success without touching the storage.
  Check "read  CopyLength 0"      ([Odx]::Read($f.SafeFileHandle, 0, 0, [ref]$out)) @(0)
  $f.Close()
  $g = Open $dest ReadWrite
  Check "write TransferOffset 1"  ([Odx]::Write($g.SafeFileHandle, 0, 65536, 1, [Odx]::ZeroToken())) @(87)
  Check "write at end of file"    ([Odx]::Write($g.SafeFileHandle, [uint64]$mb, 65536, 0, [Odx]::ZeroToken())) @(38)
  $g.Close()

  # Byte-range lock held through another handle: ERROR_LOCK_VIOLATION (33).
  $holder = Open $plain ReadWrite
  $holder.Lock(0, 65536)
  $f = Open $plain ReadWrite
  Check "read  under another handle's exclusive lock"  ([Odx]::Read($f.SafeFileHandle, 0, 65536, [ref]$out)) @(33)
  Check "write under another handle's exclusive lock" ([Odx]::Write($f.SafeFileHandle, 0, 65536, 0, [Odx]::ZeroToken())) @(33)
  $f.Close(); $holder.Unlock(0, 65536); $holder.Close()

  # A plain file: success when the virtual disk's storage offloads; otherwise the storage's
  # refusal (50 not supported, 316 device feature not supported), which odxflt passes through.
  $f = Open $plain Read
  Check "read  plain file" ([Odx]::Read($f.SafeFileHandle, 0, 65536, [ref]$out)) @(0, 50, 316)
  $f.Close()

  # odxctl.exe of the package against the loaded driver: its port client and its probe.
  $odxctl = Join-Path $PSScriptRoot "..\..\odxctl.exe"
  if (Test-Path $odxctl) {
    $stats = & $odxctl stats | Out-String
    if ($LASTEXITCODE -eq 0 -and $stats -match "odxflt: default policy") { Write-Host "PASS  odxctl stats" }
    else { Write-Host "FAIL  odxctl stats -> $LASTEXITCODE`n$stats"; $script:failures++ }
    $diagnosis = & $odxctl diagnose $plain $dest | Out-String
    if ($diagnosis -match "filter\s+odxflt\s+altitude 370031\s+SupportedFeatures 0x3") { Write-Host "PASS  odxctl diagnose lists odxflt at 0x3" }
    else { Write-Host "FAIL  odxctl diagnose: no odxflt instance at 0x3`n$diagnosis"; $script:failures++ }
  } else { Write-Host "SKIP  odxctl checks (no odxctl.exe two folders up)" }
}
finally {
  if (-not $Keep) {
    @"
select vdisk file="$Vhdx"
detach vdisk
"@ | Set-Content -Encoding ascii $dp
    diskpart /s $dp | Out-Null
    Remove-Item $Vhdx, $dp -Force -ErrorAction SilentlyContinue
  }
}

Write-Host "$script:failures failed check(s)"
exit $script:failures
