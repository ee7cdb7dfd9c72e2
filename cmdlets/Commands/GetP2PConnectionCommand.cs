using System;
using System.Management.Automation;

namespace RemoteItP2P.Commands
{
    /// <summary>Lists the connections of this process (every runspace) with live figures.</summary>
    [Cmdlet(VerbsCommon.Get, "P2PConnection", DefaultParameterSetName = "Name")]
    [OutputType(typeof(P2PConnection))]
    public sealed class GetP2PConnectionCommand : P2PCmdlet
    {
        /// <summary>Names to match; wildcards allowed.</summary>
        [Parameter(Position = 0, ParameterSetName = "Name", ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(ConnectionNameCompleter))]
        public string[] Name { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = "Id", ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(ConnectionIdCompleter))]
        public ulong[] Id { get; set; }

        /// <summary>Device UIDs to match; wildcards allowed.</summary>
        [Parameter(Mandatory = true, ParameterSetName = "DeviceId")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] DeviceId { get; set; }

        protected override void ProcessRecord()
        {
            try
            {
                switch (ParameterSetName)
                {
                    case "Id":
                        foreach (P2PConnection c in ById(Id)) WriteObject(c);
                        break;
                    case "DeviceId":
                        foreach (P2PConnection c in AllConnections())
                        {
                            foreach (string pattern in DeviceId)
                            {
                                if (new WildcardPattern(pattern, WildcardOptions.IgnoreCase).IsMatch(c.DeviceId ?? string.Empty))
                                {
                                    WriteObject(c);
                                    break;
                                }
                            }
                        }
                        break;
                    default:
                        if (Name == null) WriteObject(AllConnections(), true);
                        else foreach (P2PConnection c in ByName(Name)) WriteObject(c);
                        break;
                }
            }
            catch (P2PException e)
            {
                Throw(e, null);
            }
            WriteNativeLog();
        }
    }
}
