<#
.SYNOPSIS
Writes the MAML help of the RemoteItP2P cmdlets (RemoteItP2P.dll-Help.xml).
.DESCRIPTION
Syntax and parameter facts (types, sets, positions, pipeline input, aliases) come from the compiled
cmdlets, so they cannot drift from the code; the text and examples come from RemoteItP2P.help.psd1 beside
this script. Fails when a cmdlet or a parameter has no text. Run by build.ps1 after the module is assembled.
#>
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $OutFile
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$help = Import-PowerShellDataFile (Join-Path $PSScriptRoot 'RemoteItP2P.help.psd1')
$module = Import-Module (Join-Path $ModulePath 'RemoteItP2P.psd1') -PassThru -Force
# -WhatIf and -Confirm (OptionalCommonParameters) belong in the syntax of the cmdlets that have them, as in
# the built-in cmdlets' help; the other common parameters are summed up as [<CommonParameters>].
$common = [System.Management.Automation.PSCmdlet]::CommonParameters + 'UseTransaction'
$optionalText = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}
# Where the online version of the help is (Get-Help -Online, the cmdlets' HelpUri): the manifest's
# PrivateData.PSData.HelpUri (or ProjectUri). None yet: then no link is written.
$manifest = Import-PowerShellDataFile (Join-Path $ModulePath 'RemoteItP2P.psd1')
$onlineUri = $manifest.PrivateData.PSData['HelpUri']
if (-not $onlineUri) { $onlineUri = $manifest.PrivateData.PSData['ProjectUri'] }

# The real default of every parameter, read from a new instance of the cmdlet's class (what the cmdlet
# uses when the parameter is left out): 30, 127.0.0.1, ChaCha20Poly1305... Switches default to False;
# a zero number or a null reads "None" unless the help text gives a default (Defaults in the .psd1).
function DefaultOf($instance, [string] $name, $h) {
    if ($h.ContainsKey('Defaults') -and $h.Defaults.ContainsKey($name)) { return [string]$h.Defaults[$name] }
    $prop = $instance.GetType().GetProperty($name)
    if (-not $prop) { return 'None' }
    $value = $prop.GetValue($instance)
    if ($null -eq $value) { return 'None' }
    if ($value -is [System.Management.Automation.SwitchParameter]) { return 'False' }
    if (($value -is [int] -or $value -is [long] -or $value -is [uint64]) -and $value -eq 0) { return 'None' }
    if ($value -is [array] -and $value.Count -eq 0) { return 'None' }
    [string]$value
}

function Esc([string] $s) { [System.Security.SecurityElement]::Escape($s) }
function Para([string[]] $text) { ($text | ForEach-Object { "<maml:para>$(Esc $_)</maml:para>" }) -join '' }

function TypeName([type] $t) {
    $inner = [Nullable]::GetUnderlyingType($t)
    if ($inner) { $t = $inner }
    if ($t -eq [System.Management.Automation.SwitchParameter]) { return 'SwitchParameter' }
    $t.Name
}

function ParamXml($name, $p, $attr, [string] $text, [string] $defaultValue) {
    $pipeline = @()
    if ($attr.ValueFromPipeline) { $pipeline += 'ByValue' }
    if ($attr.ValueFromPipelineByPropertyName) { $pipeline += 'ByPropertyName' }
    $pipelineText = if ($pipeline) { "True ($($pipeline -join ', '))" } else { 'False' }
    $position = if ($attr.Position -ge 0) { $attr.Position + 1 } else { 'named' }
    $aliases = if ($p.Aliases.Count) { $p.Aliases -join ', ' } else { 'none' }
    $globbing = [bool]($p.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
    $type = TypeName $p.ParameterType
    $value = if ($type -eq 'SwitchParameter') { '' } else {
        "<command:parameterValue required=`"true`" variableLength=`"false`">$(Esc $type)</command:parameterValue>"
    }
    $default = if ($defaultValue) { "<dev:defaultValue>$(Esc $defaultValue)</dev:defaultValue>" } else { '' }
    @"
<command:parameter required="$($attr.Mandatory.ToString().ToLower())" variableLength="true" globbing="$($globbing.ToString().ToLower())" pipelineInput="$pipelineText" position="$position" aliases="$(Esc $aliases)">
<maml:name>$name</maml:name><maml:description>$(Para $text)</maml:description>$value
<dev:type><maml:name>$(Esc $p.ParameterType.FullName)</maml:name></dev:type>$default
</command:parameter>
"@
}

$sb = [System.Text.StringBuilder]::new()
[void]$sb.AppendLine('<?xml version="1.0" encoding="utf-8"?>')
[void]$sb.AppendLine('<helpItems schema="maml" xmlns="http://msh">')
foreach ($name in ($module.ExportedCmdlets.Keys | Sort-Object)) {
    $cmd = Get-Command $name
    $h = $help[$name]
    if (-not $h) { throw "RemoteItP2P.help.psd1 has no help for $name" }
    $verb, $noun = $name -split '-', 2
    [void]$sb.AppendLine('<command:command xmlns:maml="http://schemas.microsoft.com/maml/2004/10" xmlns:command="http://schemas.microsoft.com/maml/dev/command/2004/10" xmlns:dev="http://schemas.microsoft.com/maml/dev/2004/10">')
    [void]$sb.AppendLine("<command:details><command:name>$name</command:name><command:verb>$verb</command:verb><command:noun>$noun</command:noun><maml:description>$(Para $h.Synopsis)</maml:description></command:details>")
    [void]$sb.AppendLine("<maml:description>$(Para $h.Description)</maml:description>")

    # DontShow parameters (bound from the pipeline only) are not part of the documented syntax.
    $hidden = @($cmd.Parameters.Values | Where-Object { $_.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] -and $_.DontShow } } |
        ForEach-Object Name)
    $own = $cmd.Parameters.Values | Where-Object { $common -notcontains $_.Name -and $hidden -notcontains $_.Name }
    $texts = @{}
    foreach ($k in $optionalText.Keys) { $texts[$k] = $optionalText[$k] }
    foreach ($k in $h.Parameters.Keys) { $texts[$k] = $h.Parameters[$k] }
    foreach ($p in $own) {
        if (-not $texts.ContainsKey($p.Name)) { throw "RemoteItP2P.help.psd1 has no text for $name -$($p.Name)" }
    }
    $instance = [Activator]::CreateInstance($cmd.ImplementingType)
    [void]$sb.AppendLine('<command:syntax>')
    foreach ($set in $cmd.ParameterSets) {
        [void]$sb.AppendLine("<command:syntaxItem><maml:name>$name</maml:name>")
        foreach ($sp in ($set.Parameters | Where-Object { $common -notcontains $_.Name -and $hidden -notcontains $_.Name } | Sort-Object { if ($_.Position -ge 0) { $_.Position } else { 1000 } })) {
            $p = $cmd.Parameters[$sp.Name]
            $attr = [pscustomobject]@{ Mandatory = $sp.IsMandatory; Position = $sp.Position; ValueFromPipeline = $sp.ValueFromPipeline; ValueFromPipelineByPropertyName = $sp.ValueFromPipelineByPropertyName }
            [void]$sb.AppendLine((ParamXml $sp.Name $p $attr $texts[$sp.Name] ''))
        }
        [void]$sb.AppendLine('</command:syntaxItem>')
    }
    [void]$sb.AppendLine('</command:syntax>')

    [void]$sb.AppendLine('<command:parameters>')
    foreach ($p in ($own | Sort-Object Name)) {
        $attrs = $p.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] }
        $attr = [pscustomobject]@{
            Mandatory = [bool]($attrs | Where-Object Mandatory)
            Position = ($attrs | Select-Object -First 1).Position
            ValueFromPipeline = [bool]($attrs | Where-Object ValueFromPipeline)
            ValueFromPipelineByPropertyName = [bool]($attrs | Where-Object ValueFromPipelineByPropertyName)
        }
        [void]$sb.AppendLine((ParamXml $p.Name $p $attr $texts[$p.Name] (DefaultOf $instance $p.Name $h)))
    }
    [void]$sb.AppendLine('</command:parameters>')

    [void]$sb.AppendLine('<command:inputTypes>')
    foreach ($i in @($h['Inputs'] | Where-Object { $_ })) {
        [void]$sb.AppendLine("<command:inputType><dev:type><maml:name>$(Esc $i.Type)</maml:name></dev:type><maml:description>$(Para $i.Text)</maml:description></command:inputType>")
    }
    [void]$sb.AppendLine('</command:inputTypes><command:returnValues>')
    foreach ($o in @($h['Outputs'] | Where-Object { $_ })) {
        [void]$sb.AppendLine("<command:returnValue><dev:type><maml:name>$(Esc $o.Type)</maml:name></dev:type><maml:description>$(Para $o.Text)</maml:description></command:returnValue>")
    }
    [void]$sb.AppendLine('</command:returnValues>')
    if ($h['Notes']) { [void]$sb.AppendLine("<maml:alertSet><maml:alert>$(Para $h.Notes)</maml:alert></maml:alertSet>") }

    if (-not $h.Examples) { throw "RemoteItP2P.help.psd1 has no examples for $name" }
    [void]$sb.AppendLine('<command:examples>')
    $n = 0
    foreach ($e in $h.Examples) {
        $n++
        [void]$sb.AppendLine("<command:example><maml:title>-------------------------- Example ${n}: $(Esc $e.Title) --------------------------</maml:title>")
        [void]$sb.AppendLine("<dev:code>$(Esc $e.Code)</dev:code><dev:remarks>$(Para $e.Remarks)</dev:remarks></command:example>")
    }
    [void]$sb.AppendLine('</command:examples>')
    [void]$sb.AppendLine('<command:relatedLinks>')
    if ($onlineUri) {
        [void]$sb.AppendLine("<maml:navigationLink><maml:linkText>Online Version:</maml:linkText><maml:uri>$(Esc $onlineUri)</maml:uri></maml:navigationLink>")
    }
    foreach ($l in @($h['Links'] | Where-Object { $_ })) {
        [void]$sb.AppendLine("<maml:navigationLink><maml:linkText>$(Esc $l)</maml:linkText><maml:uri /></maml:navigationLink>")
    }
    [void]$sb.AppendLine('</command:relatedLinks></command:command>')
}
[void]$sb.AppendLine('</helpItems>')
# Must be well-formed: [xml] throws otherwise.
[xml]$null = $sb.ToString()
[System.IO.File]::WriteAllText($OutFile, $sb.ToString(), [System.Text.UTF8Encoding]::new($false))
Write-Host "    wrote $OutFile ($($module.ExportedCmdlets.Count) cmdlets)"
