using System.IO;
using System.Management.Automation;
using RemoteItP2P.Native;

namespace RemoteItP2P.Commands
{
    /// <summary>Reads connectd provisioning files with the same parser as connectd -f. Secrets are never output.</summary>
    [Cmdlet(VerbsCommon.Get, "P2PProvisioning")]
    [OutputType(typeof(P2PProvisioning))]
    public sealed class GetP2PProvisioningCommand : P2PCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "ProvisioningFile")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Path { get; set; } = System.Array.Empty<string>();

        protected override void ProcessRecord()
        {
            foreach (string pattern in Path)
            {
                ProviderInfo provider;
                System.Collections.ObjectModel.Collection<string> files;
                try
                {
                    files = GetResolvedProviderPathFromPSPath(pattern, out provider);
                }
                catch (ItemNotFoundException e)
                {
                    WriteError(new ErrorRecord(new FileNotFoundException(e.Message), ErrorIds.ProvisioningNotFound,
                        ErrorCategory.ObjectNotFound, pattern));
                    continue;
                }
                foreach (string file in files) ReadOne(file);
            }
            WriteNativeLog();
        }

        private void ReadOne(string file)
        {
            try
            {
                P2PProvisioning parsed = P2PProvisioning.FromJson(file, NativeMethods.ProvisioningParse(file));
                foreach (P2PProvisioningWarning w in parsed.Warnings) WriteWarning(file + ": " + w);
                WriteObject(parsed);
            }
            catch (P2PException e) when (e.Code == P2PResultCode.Provisioning)
            {
                Report(new P2PProvisioningException(file, e), file);
            }
            catch (P2PException e)
            {
                Report(e, file);
            }
        }
    }
}
