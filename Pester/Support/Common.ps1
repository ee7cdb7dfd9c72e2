# The set-up shared by the Pester files that run against a real lab (P2PLab.psm1). Dot-source it from the
# file's BeforeAll: . (Join-Path $PSScriptRoot 'Support/Common.ps1')
# It sets $ModulePath (the module under test: $env:REMOTEITP2P_MODULE_PATH, or out/RemoteItP2P), imports
# P2PLab and that module, starts the lab ($Lab) and sets $Common (-Server and -ServerKey, for splatting).
# Stop-P2PTestLab, for the file's AfterAll, stops the connections left open and the lab.

$script:ModulePath = if ($env:REMOTEITP2P_MODULE_PATH) { $env:REMOTEITP2P_MODULE_PATH } else { Join-Path $PSScriptRoot '../../out/RemoteItP2P' }
$script:ModulePath = (Resolve-Path $script:ModulePath).ProviderPath
Import-Module (Join-Path $PSScriptRoot 'P2PLab.psm1') -Force
Import-Module $script:ModulePath -Force
$script:Lab = Start-P2PLab
$script:Common = @{ Server = $Lab.Server; ServerKey = $Lab.ServerKey }

function script:Stop-P2PTestLab {
    Get-P2PConnection | Stop-P2PConnection -ErrorAction SilentlyContinue
    Stop-P2PLab $script:Lab
}

# Stop-P2PConnection refuses $Other (a connection object of another process: P2PConnectionFromOtherProcess)
# and closes nothing: $Mine, the connection of this process with the same Id, is still connected.
function script:Assert-StopRefusesOtherProcess($Other, $Mine) {
    $Other | Stop-P2PConnection -ErrorVariable e -ErrorAction SilentlyContinue
    $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionFromOtherProcess,*'
    (Get-P2PConnection -Id $Mine.Id).State | Should -Be 'Connected'
}
