// What every cmdlet of the module shares: the native log written on the pipeline thread, error records,
// the lookup of connections by Id / Name / DeviceId, and a wait for a connection's state that blocks in the
// native library (no polling) and ends at once on Ctrl+C.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Management.Automation;
using System.Threading;
using RemoteItP2P.Native;

namespace RemoteItP2P.Commands
{
    /// <summary>Base class of the module's cmdlets. PowerShell disposes a cmdlet that is IDisposable when its
    /// pipeline ends, which releases the cancellation source.</summary>
    public abstract class P2PCmdlet : PSCmdlet, IDisposable
    {
        private readonly CancellationTokenSource _stopping = new CancellationTokenSource();
        private readonly object _stoppingGate = new object();
        private bool _disposed;

        /// <summary>Signalled when the user presses Ctrl+C (StopProcessing).</summary>
        protected CancellationToken Cancellation => _stopping.Token;

        /// <summary>A native cancellation token fired by Ctrl+C, for the blocking native calls: dispose it
        /// (<c>using</c>) when they returned.</summary>
        protected NativeCancellation NewNativeCancellation() => new NativeCancellation(Cancellation);

        protected override void BeginProcessing()
        {
            try
            {
                NativeMethods.EnsureLoaded();
            }
            catch (P2PNativeLibraryException e)
            {
                ThrowTerminatingError(ErrorIds.FromException(e, NativeLibraryLoader.OverrideVariable));
            }
            if (WantsDebug) NativeMethods.RequestLogLevel(4);
            // Lines logged while no cmdlet listened belong to nobody: don't dump them on this one.
            NativeMethods.DiscardLogsBefore(DateTime.Now.AddSeconds(-1));
        }

        protected override void EndProcessing() => WriteNativeLog();

        /// <summary>Ctrl+C (or the pipeline stopping): runs on another thread than ProcessRecord and ends its
        /// native waits at once through the registered native cancellation tokens.</summary>
        protected override void StopProcessing()
        {
            lock (_stoppingGate)
            {
                if (!_disposed) _stopping.Cancel();
            }
        }

        public void Dispose()
        {
            lock (_stoppingGate)
            {
                if (_disposed) return;
                _disposed = true;
                _stopping.Dispose();
            }
            GC.SuppressFinalize(this);
        }

        private bool WantsDebug
        {
            get
            {
                if (MyInvocation.BoundParameters.TryGetValue("Debug", out object? d) && d is SwitchParameter s && s.IsPresent) return true;
                object? pref = GetVariableValue("DebugPreference");
                return pref is ActionPreference p && p != ActionPreference.SilentlyContinue;
            }
        }

        /// <summary>-Debug without -Verbose. PowerShell then makes the verbose preference Inquire (and on 5.1 the
        /// debug one too): every WriteVerbose would ask "Continue with this operation?", and fail in a script.</summary>
        private bool DebugWithoutVerbose =>
            MyInvocation.BoundParameters.TryGetValue("Debug", out object? d) && d is SwitchParameter s && s.IsPresent &&
            !MyInvocation.BoundParameters.ContainsKey("Verbose");

        private static readonly bool WindowsPowerShell = typeof(PSObject).Assembly.GetName().Version.Major < 6;

        /// <summary>A verbose line; with -Debug (and no -Verbose) a debug line instead, so -Debug never prompts.</summary>
        protected void Verbose(string text)
        {
            if (DebugWithoutVerbose) Debug(text);
            else WriteVerbose(text);
        }

        /// <summary>A debug line that does not prompt under Windows PowerShell's -Debug (Inquire there).</summary>
        protected void Debug(string text)
        {
            if (WindowsPowerShell && DebugWithoutVerbose && Host?.UI != null) Host.UI.WriteDebugLine(text);
            else WriteDebug(text);
        }

        /// <summary>Writes the queued native log lines: up to info as verbose, debug and trace as debug.
        /// Must run on the pipeline thread (WriteVerbose is not allowed from native threads).</summary>
        protected void WriteNativeLog()
        {
            while (NativeMethods.TryDequeueLog(out NativeLogEntry? entry))
            {
                string text = "[native] " + entry.Message;
                if (entry.Level <= 3) Verbose(text);
                else Debug(text);
            }
        }

        /// <summary>Terminating error from an exception, with the module's id and category.</summary>
        protected void Throw(Exception e, object? target)
        {
            WriteNativeLog();
            ThrowTerminatingError(ErrorIds.FromException(e, target));
        }

        /// <summary>Non-terminating error from an exception.</summary>
        protected void Report(Exception e, object? target)
        {
            WriteNativeLog();
            WriteError(ErrorIds.FromException(e, target));
        }

        /// <summary>The environment variables the native library reads that a user sets (the server, its key,
        /// the self-test's probe addresses).</summary>
        internal static readonly string[] ForwardedVariables =
        {
            "P2P_SERVER", "P2P_SERVER_KEY", "P2P_PROBE_ADDR1", "P2P_PROBE_ADDR2", "P2P_PROBE_ADDR3",
        };

        /// <summary>Those variables as this process sees them, for the "environment" field of the native
        /// library's JSON. On Unix .NET keeps its own copy of the environment: <c>$env:P2P_SERVER = ...</c> in
        /// PowerShell never reaches the C runtime's, which is all the native library could read by itself.
        /// Values still apply only where no parameter (or provisioning file) gives one.</summary>
        protected static Dictionary<string, object> HostEnvironment()
        {
            var env = new Dictionary<string, object>();
            foreach (string name in ForwardedVariables)
            {
                string? value = Environment.GetEnvironmentVariable(name);
                if (!string.IsNullOrEmpty(value)) env[name] = value;
            }
            return env;
        }

        /// <summary>The live status of a connection, or null once it was forgotten (stopped and removed).</summary>
        protected static P2PConnection? Refresh(ulong id)
        {
            string? json = NativeMethods.SessionStatus(id);
            return json == null ? null : P2PConnection.FromJson(Internal.JsonObject.ParseObject(json));
        }

        protected static List<P2PConnection> AllConnections() => P2PConnection.ListFromJson(NativeMethods.SessionList());

        /// <summary>Connections whose name matches any of the patterns (wildcards allowed, case-insensitive).
        /// A pattern without wildcards that matches nothing is reported as a non-terminating error.</summary>
        protected IEnumerable<P2PConnection> ByName(string[] names)
        {
            var all = AllConnections();
            var seen = new HashSet<ulong>();
            foreach (string name in names)
            {
                var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
                bool any = false;
                foreach (P2PConnection c in all)
                {
                    if (c.Name == null || !pattern.IsMatch(c.Name)) continue;
                    any = true;
                    if (seen.Add(c.Id)) yield return c;
                }
                if (!any && !WildcardPattern.ContainsWildcardCharacters(name))
                {
                    WriteError(ErrorIds.Make(ErrorIds.NotFound, ErrorCategory.ObjectNotFound,
                        "No P2P connection is named '" + name + "'. Get-P2PConnection lists them.", name));
                }
            }
        }

        /// <summary>Connections by Id; an unknown Id is a non-terminating error.</summary>
        protected IEnumerable<P2PConnection> ById(ulong[] ids)
        {
            foreach (ulong id in ids)
            {
                P2PConnection? c = Refresh(id);
                if (c == null)
                {
                    WriteError(ErrorIds.Make(ErrorIds.NotFound, ErrorCategory.ObjectNotFound,
                        "No P2P connection has Id " + id + " in this process (it was stopped, or never existed). Get-P2PConnection lists them.", id));
                    continue;
                }
                yield return c;
            }
        }

        /// <summary>Waits until <paramref name="done"/> says so, the connection is forgotten, the time runs out or
        /// the user cancels. The native library wakes the wait when the state changes; it also returns every
        /// second, to update the progress (elapsed seconds) and write the native log.</summary>
        /// <returns>The last status seen (null when the connection was forgotten).</returns>
        protected P2PConnection? WaitFor(ulong id, Func<P2PConnection, bool> done, int timeoutSec, string activity,
            out WaitOutcome outcome)
        {
            var clock = Stopwatch.StartNew();
            var progress = new ProgressRecord(Math.Abs((int)(id % int.MaxValue)), activity, "Starting");
            P2PConnection? last = Refresh(id);
            try
            {
                using NativeCancellation cancel = NewNativeCancellation();
                while (true)
                {
                    WriteNativeLog();
                    if (last == null) { outcome = WaitOutcome.Gone; return null; }
                    if (done(last)) { outcome = WaitOutcome.Done; return last; }
                    long elapsedMs = clock.ElapsedMilliseconds;
                    if (timeoutSec >= 0 && elapsedMs >= timeoutSec * 1000L) { outcome = WaitOutcome.TimedOut; return last; }
                    if (Cancellation.IsCancellationRequested) { outcome = WaitOutcome.Cancelled; return last; }
                    progress.StatusDescription = last.State + " (" + elapsedMs / 1000 + " s" +
                        (timeoutSec >= 0 ? " of " + timeoutSec + " s" : string.Empty) + ")";
                    if (timeoutSec > 0)
                        progress.PercentComplete = Math.Min(99, (int)(elapsedMs * 100 / (timeoutSec * 1000L)));
                    WriteProgress(progress);
                    // Until the next whole second (for the progress), or the deadline if sooner.
                    long sliceMs = 1000 - elapsedMs % 1000;
                    if (timeoutSec >= 0) sliceMs = Math.Min(sliceMs, timeoutSec * 1000L - elapsedMs);
                    P2PResultCode rc = NativeMethods.SessionWait(id, last.State.ToString(), (uint)Math.Max(1, sliceMs), cancel,
                        out string? json);
                    switch (rc)
                    {
                        case P2PResultCode.Ok:
                            last = P2PConnection.FromJson(Internal.JsonObject.ParseObject(json!));
                            break;
                        case P2PResultCode.Cancelled:
                            outcome = WaitOutcome.Cancelled;
                            return last;
                        case P2PResultCode.InvalidHandle:
                            last = null;
                            break;
                        default:
                            // Timeout: no change in this slice. Re-read the figures the progress shows.
                            last = Refresh(id);
                            break;
                    }
                }
            }
            finally
            {
                progress.RecordType = ProgressRecordType.Completed;
                try { WriteProgress(progress); } catch (PipelineStoppedException) { }
            }
        }

        /// <summary>How a wait ended.</summary>
        protected enum WaitOutcome
        {
            Done,
            Gone,
            TimedOut,
            Cancelled,
        }

        /// <summary>Stops and forgets a connection, reporting (not throwing) a failure.</summary>
        protected static void StopQuietly(ulong id)
        {
            try { NativeMethods.SessionForget(id); }
            catch (P2PException) { /* best effort while already reporting another error */ }
        }
    }

    /// <summary>Base class of the cmdlets that act on chosen connections (Stop-, Wait-P2PConnection): the
    /// InputObject / Id / Name parameter sets and the lookup they select.</summary>
    public abstract class P2PConnectionTargetCmdlet : P2PCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = "InputObject", ValueFromPipeline = true)]
        [P2PConnectionInput]
        [ValidateNotNull]
        public P2PConnection[] InputObject { get; set; } = Array.Empty<P2PConnection>();

        [Parameter(Mandatory = true, ParameterSetName = "Id", ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(ConnectionIdCompleter))]
        public ulong[] Id { get; set; } = Array.Empty<ulong>();

        [Parameter(Mandatory = true, ParameterSetName = "Name")]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(ConnectionNameCompleter))]
        public string[] Name { get; set; } = Array.Empty<string>();

        /// <summary>The connections the bound parameter set names.</summary>
        protected IEnumerable<P2PConnection> SelectedConnections()
        {
            switch (ParameterSetName)
            {
                case "Id": return ById(Id);
                case "Name": return ByName(Name);
                default: return Checked(InputObject);
            }
        }

        /// <summary>The input objects that are this process's connections: a bare Id is looked up, and an
        /// object from another process (a job's output) is refused with an error, never matched by Id.</summary>
        private IEnumerable<P2PConnection> Checked(P2PConnection[] input)
        {
            foreach (P2PConnection c in input)
            {
                if (c.IdOnly)
                {
                    foreach (P2PConnection found in ById(new[] { c.Id })) yield return found;
                    continue;
                }
                if (!c.IsFromThisProcess)
                {
                    string who = c.ProcessId != 0 ? "process " + c.ProcessId : "another process";
                    WriteError(ErrorIds.Make(ErrorIds.OtherProcess, ErrorCategory.InvalidArgument,
                        "P2P connection '" + (c.Name ?? c.DeviceId) + "' (Id " + c.Id + ") was made by " + who +
                        " (a job, a remote session or another PowerShell), not by this one (process " + P2PProcessIdentity.ProcessId +
                        "): its local port lives in that process, and Id " + c.Id + " here is a different connection. " +
                        "Stop it where it was made, e.g. inside the job.", c.InstanceId));
                    continue;
                }
                yield return c;
            }
        }
    }
}
