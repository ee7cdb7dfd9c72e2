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
        public string[]? Name { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = "Id", ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(ConnectionIdCompleter))]
        public ulong[] Id { get; set; } = Array.Empty<ulong>();

        /// <summary>Device UIDs to match; wildcards allowed.</summary>
        [Parameter(Mandatory = true, ParameterSetName = "DeviceId")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] DeviceId { get; set; } = Array.Empty<string>();

        /// <summary>From the pipeline only: a connection object's InstanceId. A connection made by another
        /// process (a job's output) is refused rather than matched by its Id or Name here; one of this process
        /// is matched exactly.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
        public Guid InstanceId { get; set; }

        protected override void ProcessRecord()
        {
            bool byInstance = MyInvocation.BoundParameters.ContainsKey(nameof(InstanceId)) && InstanceId != Guid.Empty;
            if (byInstance && !P2PProcessIdentity.Owns(InstanceId))
            {
                WriteError(ErrorIds.Make(ErrorIds.OtherProcess, ErrorCategory.InvalidArgument,
                    "This P2P connection (InstanceId " + InstanceId + ") was made by another process (a job, a remote session or " +
                    "another PowerShell), not by this one: its Id and Name mean other connections here. Look it up where it was made.",
                    InstanceId));
                return;
            }
            if (byInstance)
            {
                foreach (P2PConnection c in AllConnections())
                {
                    if (c.InstanceId == InstanceId)
                    {
                        WriteObject(c);
                        return;
                    }
                }
                WriteError(ErrorIds.Make(ErrorIds.NotFound, ErrorCategory.ObjectNotFound,
                    "The P2P connection with InstanceId " + InstanceId + " is gone (stopped or removed). Get-P2PConnection lists the open ones.",
                    InstanceId));
                return;
            }
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
