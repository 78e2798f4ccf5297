# devingress on Windows: run from an elevated PowerShell in the folder that
# holds devingress.exe (e.g. the unpacked release, or target\release).
#   powershell -ExecutionPolicy Bypass -File installers\windows\install.ps1
# It copies devingress.exe to %ProgramFiles%\devingress, registers a
# scheduled task that runs `devingress up --dns-port 53` at logon with
# highest privileges (NRPT rules need an administrator and port 53, see
# README), and trusts devingress's CA. uninstall.ps1 takes all of it back.
#Requires -RunAsAdministrator
param([string]$Exe = (Join-Path (Get-Location) "devingress.exe"))
$ErrorActionPreference = "Stop"

if (-not (Test-Path $Exe)) { throw "devingress.exe not found at $Exe (pass -Exe PATH)" }
$dir = Join-Path $env:ProgramFiles "devingress"
New-Item -ItemType Directory -Force -Path $dir | Out-Null
$target = Join-Path $dir "devingress.exe"
Copy-Item -Force $Exe $target
Write-Host "copied devingress.exe to $target"

$action = New-ScheduledTaskAction -Execute $target -Argument "up --dns-port 53"
$trigger = New-ScheduledTaskTrigger -AtLogOn -User "$env:USERDOMAIN\$env:USERNAME"
$principal = New-ScheduledTaskPrincipal -UserId "$env:USERDOMAIN\$env:USERNAME" -RunLevel Highest -LogonType Interactive
$settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit ([TimeSpan]::Zero) -RestartCount 3 -RestartInterval (New-TimeSpan -Minutes 1)
Register-ScheduledTask -TaskName "devingress" -Description "devingress: every Ingress of your local cluster on its real host name" -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Force | Out-Null
Write-Host "registered the scheduled task 'devingress' (at logon, highest privileges); starting it now"
Start-ScheduledTask -TaskName "devingress"

& $target trust
Write-Host "done: NRPT rules (comment 'devingress') follow your Ingresses while it runs; uninstall.ps1 removes everything"
