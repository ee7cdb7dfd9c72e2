# The script part of RemoteItP2P. The cmdlets are in RemoteItP2P.dll (NestedModules in the manifest).
#
# Connections belong to the process, not to a runspace: every runspace sees the same ones. Removing the
# module (from any runspace) closes them all, so no local port outlives the module; process exit closes
# them too (NativeMethods registers for ProcessExit).

$ExecutionContext.SessionState.Module.OnRemove = {
    $problem = [RemoteItP2P.ModuleLifetime]::CloseAll(10000)
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
