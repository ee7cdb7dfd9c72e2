using System;
using System.Management.Automation;

namespace RemoteItP2P.Commands
{
    /// <summary>Waits until connections reach a state (Connected by default) and outputs them.</summary>
    [Cmdlet(VerbsLifecycle.Wait, "P2PConnection", DefaultParameterSetName = "InputObject")]
    [OutputType(typeof(P2PConnection))]
    public sealed class WaitP2PConnectionCommand : P2PConnectionTargetCmdlet
    {
        /// <summary>The state to wait for.</summary>
        [Parameter]
        public P2PConnectionState State { get; set; } = P2PConnectionState.Connected;

        /// <summary>Seconds to wait for each connection; -1 (the default) waits until Ctrl+C.</summary>
        [Parameter]
        [ValidateRange(-1, int.MaxValue)]
        public int TimeoutSec { get; set; } = -1;

        protected override void ProcessRecord()
        {
            foreach (P2PConnection c in SelectedConnections())
            {
                if (Cancellation.IsCancellationRequested) return;
                WaitOne(c);
            }
        }

        private void WaitOne(P2PConnection connection)
        {
            // A connection that ended will not change again: stop waiting for it either way.
            P2PConnection? last = WaitFor(connection.Id, c => c.State == State || !c.IsActive,
                TimeoutSec, "Waiting for " + (connection.Name ?? connection.DeviceId) + " to be " + State,
                out WaitOutcome outcome);
            switch (outcome)
            {
                case WaitOutcome.Cancelled:
                    return;
                case WaitOutcome.Gone:
                    if (State == P2PConnectionState.Stopped)
                    {
                        // Stopped and removed (perhaps long ago): what was asked for, so output it as Stopped.
                        if (connection.IsActive) connection.State = P2PConnectionState.Stopped;
                        connection.StreamsOpen = 0;
                        WriteObject(connection);
                        return;
                    }
                    WriteError(ErrorIds.Make(ErrorIds.NotFound, ErrorCategory.ObjectNotFound,
                        "P2P connection Id " + connection.Id + " was stopped and removed while waiting for " + State + ".", connection.DeviceId));
                    return;
                case WaitOutcome.TimedOut when last != null:
                    WriteError(ErrorIds.Record(new TimeoutException("P2P connection '" + last.Name + "' (Id " + last.Id + ") is " + last.State +
                        ", not " + State + ", after " + TimeoutSec + " s."), ErrorIds.WaitTimeout, ErrorCategory.OperationTimeout, last.DeviceId));
                    return;
                case WaitOutcome.Done when last != null:
                    if (last.State == State || (State == P2PConnectionState.Stopped && !last.IsActive))
                    {
                        WriteObject(last);
                        return;
                    }
                    Report(new P2PConnectionException(last.LastErrorKind ?? "P2PFailed",
                        "P2P connection '" + last.Name + "' (Id " + last.Id + ") ended " + last.State + " while waiting for " + State +
                        (last.LastError != null ? ": " + last.LastError : "."), last), last.DeviceId);
                    return;
            }
        }
    }
}
