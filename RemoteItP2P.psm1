# The script part of RemoteItP2P. The cmdlets are in RemoteItP2P.dll (NestedModules in the manifest).
#
# Connections belong to the process, not to a runspace: every runspace sees the same ones. Removing the
# module (Remove-Module, from any runspace) closes them all, with a warning naming them, so no local port
# outlives the module; process exit closes them too (NativeMethods registers for ProcessExit).
# Import-Module -Force (a re-import: remove, then import again) keeps them: the new module instance sees the
# same connections, and objects already held stay true.

$ExecutionContext.SessionState.Module.OnRemove = {
    if ([System.Environment]::StackTrace -match 'ImportModuleCommand') {
        $open = [RemoteItP2P.ModuleLifetime]::OpenConnections()
        if ($open.Count) {
            Write-Verbose "RemoteItP2P: re-imported; $($open.Count) open connection(s) kept: $($open -join ', ')"
        }
        return
    }
    $open = [RemoteItP2P.ModuleLifetime]::OpenConnections()
    $problem = [RemoteItP2P.ModuleLifetime]::CloseAll(10000)
    if ($open.Count) {
        Write-Warning ("RemoteItP2P: removing the module closed $($open.Count) open connection(s): $($open -join ', '). " +
            'Objects held from before show their last state until refreshed ($c.Refresh(), or Get-P2PConnection).')
    }
    if ($problem) {
        Write-Warning "RemoteItP2P: closing the connections when the module was removed: $problem"
    }
}

Export-ModuleMember -Cmdlet @(
    'New-P2PConnection'
    'Get-P2PConnection'
    'Stop-P2PConnection'
    'Wait-P2PConnection'
    'Test-P2PNetwork'
    'Get-P2PProvisioning'
)
