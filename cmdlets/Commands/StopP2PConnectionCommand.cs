using System.Management.Automation;
using RemoteItP2P.Native;

namespace RemoteItP2P.Commands
{
    /// <summary>Closes connections: the local port is closed when the cmdlet returns. Stopping a connection
    /// that is already gone does nothing.</summary>
    [Cmdlet(VerbsLifecycle.Stop, "P2PConnection", DefaultParameterSetName = "InputObject",
        SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(P2PConnection))]
    public sealed class StopP2PConnectionCommand : P2PConnectionTargetCmdlet
    {
        /// <summary>How long to wait for each connection to close (seconds).</summary>
        [Parameter]
        [ValidateRange(1, 600)]
        public int TimeoutSec { get; set; } = 10;

        /// <summary>Output the stopped connections.</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void ProcessRecord()
        {
            foreach (P2PConnection c in SelectedConnections())
            {
                if (Cancellation.IsCancellationRequested) return;
                Stop(c);
            }
            WriteNativeLog();
        }

        private void Stop(P2PConnection connection)
        {
            string label = (connection.Name ?? connection.DeviceId) + " (Id " + connection.Id + ", " + connection.LocalEndpoint + ")";
            if (!ShouldProcess(label, "Stop P2P connection")) return;
            try
            {
                // Stop waits for the port to close; forget then removes it from the list. A connection that is
                // already gone (stopped twice, or by another runspace) is not an error.
                bool known;
                using (NativeCancellation cancel = NewNativeCancellation())
                {
                    known = NativeMethods.SessionStop(connection.Id, (uint)TimeoutSec * 1000, cancel);
                }
                P2PConnection? final = known ? Refresh(connection.Id) : null;
                if (known) NativeMethods.SessionForget(connection.Id);
                else Verbose(label + " was already stopped.");
                if (PassThru)
                {
                    final = final ?? connection;
                    final.State = final.State == P2PConnectionState.Failed ? P2PConnectionState.Failed : P2PConnectionState.Stopped;
                    final.StreamsOpen = 0;
                    WriteObject(final);
                }
            }
            catch (P2PException e) when (e.Code == P2PResultCode.Cancelled)
            {
                // Ctrl+C: the pipeline is stopping and nothing more may be written. The stop goes on in the
                // background; the connection stays listed (Stopped) until Stop-P2PConnection runs again.
            }
            catch (P2PException e) when (e.Code == P2PResultCode.Timeout)
            {
                WriteNativeLog();
                WriteError(ErrorIds.Record(e, ErrorIds.StopFailed, ErrorCategory.OperationTimeout, connection));
            }
            catch (P2PException e)
            {
                Report(e, connection);
            }
        }
    }
}
