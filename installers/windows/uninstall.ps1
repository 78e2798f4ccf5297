# Takes back what install.ps1 did: stops devingress, removes its scheduled
# task, its CA from the trust store, any NRPT rule it left, and its files.
#Requires -RunAsAdministrator
$ErrorActionPreference = "Continue"
$dir = Join-Path $env:ProgramFiles "devingress"
$target = Join-Path $dir "devingress.exe"
if (Test-Path $target) {
    & $target down 2>$null
    & $target untrust
}
if (Get-ScheduledTask -TaskName "devingress" -ErrorAction SilentlyContinue) {
    Stop-ScheduledTask -TaskName "devingress" -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName "devingress" -Confirm:$false
    Write-Host "removed the scheduled task 'devingress'"
}
Get-DnsClientNrptRule | Where-Object Comment -eq 'devingress' | Remove-DnsClientNrptRule -Force
Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
Write-Host "removed $dir"
