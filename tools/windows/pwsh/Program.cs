// Why this exists: the entry point of the pwsh.exe that tools/windows/pester-under-wine.sh builds to run the
// Pester suite with PowerShell for Windows under wine (see pwsh.csproj). It is PowerShell's own console host
// (Microsoft.PowerShell.ConsoleShell, so the usual pwsh command line: -NoProfile -NonInteractive -File
// -Command ...), with one addition: wine-fixes.ps1 from $PSHOME runs at the start of every runspace (the
// console's and any [powershell]::Create()), to work around what wine 8.0 gets wrong (see that file).
using System;
using System.IO;
using System.Management.Automation.Runspaces;

static class Program
{
    static int Main(string[] args)
    {
        var iss = InitialSessionState.CreateDefault2();
        var fixes = Path.Combine(AppContext.BaseDirectory, "wine-fixes.ps1");
        if (File.Exists(fixes)) iss.StartupScripts.Add(fixes);
        return Microsoft.PowerShell.ConsoleShell.Start(iss, "PowerShell 7.6.10 (RemoteItP2P, for wine)", "", args);
    }
}
