#
# Module manifest of RemoteItP2P: peer-to-peer tunnels to devices, the PowerShell replacement of
# remote.it's p2p.ps1 / connectd command lines. build.ps1 assembles the module in out/RemoteItP2P/.
#
@{
    RootModule             = 'RemoteItP2P.psm1'
    ModuleVersion          = '0.1.0'
    CompatiblePSEditions   = @('Desktop', 'Core')
    GUID                   = '23b22c4c-d49d-4890-a9e0-dacddbe12744'
    Author                 = 'RemoteItP2P contributors'
    CompanyName            = 'RemoteItP2P contributors'
    Copyright              = '(c) RemoteItP2P contributors. MIT License.'
    Description            = 'Peer-to-peer TCP tunnels to devices through a self-hosted RemoteItP2P server: New-P2PConnection, Get-P2PConnection, Stop-P2PConnection and friends replace connectd command lines, Start-Sleep and Stop-Process.'
    PowerShellVersion      = '5.1'
    DotNetFrameworkVersion = '4.7.2'
    # The binary cmdlets; loaded before RootModule, whose OnRemove closes the sessions.
    NestedModules          = @('RemoteItP2P.dll')
    FormatsToProcess       = @('RemoteItP2P.Format.ps1xml')
    FunctionsToExport      = @()
    CmdletsToExport        = @(
        'New-P2PConnection'
        'Get-P2PConnection'
        'Stop-P2PConnection'
        'Wait-P2PConnection'
        'Test-P2PNetwork'
        'Get-P2PProvisioning'
    )
    VariablesToExport      = @()
    AliasesToExport        = @()
    FileList               = @(
        'RemoteItP2P.psd1'
        'RemoteItP2P.psm1'
        'RemoteItP2P.dll'
        'RemoteItP2P.Format.ps1xml'
        'en-US/RemoteItP2P.dll-Help.xml'
        'en-US/about_RemoteItP2P.help.txt'
    )
    PrivateData            = @{
        PSData = @{
            Tags         = @('P2P', 'Tunnel', 'connectd', 'remoteit', 'Networking', 'SSH', 'NAT',
                'PSEdition_Core', 'PSEdition_Desktop', 'Windows', 'Linux', 'MacOS')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ReleaseNotes = 'First release: New-P2PConnection, Get-P2PConnection, Stop-P2PConnection, Wait-P2PConnection, Test-P2PNetwork, Get-P2PProvisioning.'
        }
    }
}
