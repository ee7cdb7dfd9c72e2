# Why this exists: $PSHOME/wine-fixes.ps1 of the pwsh.exe built by pwsh.csproj for the Pester run under wine
# (tools/windows/pester-under-wine.sh); Program.cs adds it to every runspace. Real Windows does not need it.
# Run at the start of every runspace of this pwsh.exe (InitialSessionState.StartupScripts).
# Wine 8.0's NtQueryDirectoryFile does not match the DOS wildcard .NET makes of "name.*", so PowerShell's
# search of $env:PATH for a bare command name (cmd, pwsh, git.exe) finds nothing. Resolve it here instead.
$ExecutionContext.InvokeCommand.CommandNotFoundAction = {
    param([string] $Name, [System.Management.Automation.CommandLookupEventArgs] $LookupArgs)
    if ($Name.IndexOfAny([char[]]'\/:*?') -ge 0) { return }
    $exts = @($env:PATHEXT -split ';' | Where-Object { $_ })
    $candidates = if ($exts -contains [System.IO.Path]::GetExtension($Name)) { @($Name) } else { @($exts | ForEach-Object { $Name + $_ }) }
    foreach ($dir in $env:PATH -split ';') {
        if (-not $dir) { continue }
        foreach ($c in $candidates) {
            $p = [System.IO.Path]::Combine($dir, $c)
            if ([System.IO.File]::Exists($p)) {
                $LookupArgs.Command = $ExecutionContext.InvokeCommand.GetCommand($p, 'Application')
                $LookupArgs.StopSearch = $true
                return
            }
        }
    }
}
