// The C ABI of native/p2p-ffi (include/remoteitp2p.h), bound by explicit loading (NativeLibraryLoader) and
// delegates, so that the same netstandard2.0 assembly works on Windows PowerShell 5.1 and PowerShell 7.
// Strings cross as UTF-8: in as NUL-terminated byte arrays, out as char* freed with p2p_string_free.
// The error of a failed call is per calling thread in the library: it is read right after the call, on the
// same thread, and turned into a P2PException.
// The calls that block (waiting for a session to change, stop, the network self-test) take a native
// cancellation token (NativeCancellation) that a cmdlet's StopProcessing fires from another thread.

using System;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace RemoteItP2P.Native
{
    /// <summary>Result codes of the C ABI.</summary>
    public enum P2PResultCode
    {
        Ok = 0,
        InvalidArgument = 1,
        InvalidConfig = 2,
        InvalidHandle = 3,
        PortInUse = 4,
        Panic = 5,
        Timeout = 6,
        Provisioning = 7,
        NotSupported = 8,
        Internal = 9,
        BufferTooSmall = 10,
        /// <summary>The call's cancellation token was fired (Ctrl+C) before it finished.</summary>
        Cancelled = 11,
    }

    /// <summary>A log line from the native library, queued by its threads and written by a cmdlet.</summary>
    public sealed class NativeLogEntry
    {
        public NativeLogEntry(int level, string message)
        {
            Level = level;
            Message = message;
            Time = DateTime.Now;
        }

        /// <summary>1 error, 2 warn, 3 info, 4 debug, 5 trace.</summary>
        public int Level { get; }
        public string Message { get; }
        public DateTime Time { get; }
    }

    /// <summary>The bound functions. All members are thread-safe.</summary>
    public static class NativeMethods
    {
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate IntPtr VersionFn();
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int StartFn(byte[]? configJson, out ulong handle);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int HandleJsonFn(ulong handle, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int JsonFn(out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int StopFn(ulong handle, uint timeoutMs);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int HandleFn(ulong handle);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int TimeoutFn(uint timeoutMs);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int StringInJsonOutFn(byte[]? input, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate void FreeFn(IntPtr s);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int StartFileFn(byte[]? path, byte[]? overridesJson, out ulong handle);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate void LogCallback(int level, IntPtr message, IntPtr userData);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int SetLogCallbackFn(LogCallback? cb, IntPtr userData, int maxLevel);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int WaitFn(ulong handle, byte[]? sinceState, uint timeoutMs, ulong cancel, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CancelNewFn(out ulong cancel);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int StopCancellableFn(ulong handle, uint timeoutMs, ulong cancel);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int StringInCancelJsonOutFn(byte[]? input, ulong cancel, out IntPtr json);

        private static readonly object Gate = new object();
        private static volatile bool _loaded;
        private static IntPtr _library;

        // Null until EnsureLoaded, and null for an export the loaded library lacks (Need reports it).
        private static VersionFn? _version;
        private static StartFn? _sessionStart;
        private static StartFileFn? _sessionStartFile;
        private static HandleJsonFn? _sessionStatus;
        private static JsonFn? _sessionList;
        private static StopFn? _sessionStop;
        private static StopCancellableFn? _sessionStopCancellable;
        private static WaitFn? _sessionWait;
        private static HandleFn? _sessionForget;
        private static TimeoutFn? _shutdown;
        private static StringInJsonOutFn? _networkTest;
        private static StringInCancelJsonOutFn? _networkTestCancellable;
        private static StringInJsonOutFn? _provisioningParse;
        private static CancelNewFn? _cancelNew;
        private static HandleFn? _cancelFire;
        private static HandleFn? _cancelFree;
        private static JsonFn? _lastError;
        private static JsonFn? _lastErrorKind;
        private static FreeFn? _stringFree;
        private static SetLogCallbackFn? _setLogCallback;

        // Kept alive for the life of the process: the library holds a pointer to it.
        private static readonly LogCallback LogCallbackKeepAlive = OnNativeLog;
        private static readonly ConcurrentQueue<NativeLogEntry> LogQueue = new ConcurrentQueue<NativeLogEntry>();
        private static int _logCount;
        private const int LogQueueLimit = 5000;
        private static int _logLevel = 3;
        private static int _droppedLogs;

        /// <summary>Loads the library and binds every export (once). Throws P2PNativeLibraryException.</summary>
        public static void EnsureLoaded()
        {
            if (_loaded) return;
            lock (Gate)
            {
                if (_loaded) return;
                _library = NativeLibraryLoader.Load();
                _version = Bind<VersionFn>("p2p_version");
                _sessionStart = Bind<StartFn>("p2p_session_start");
                _sessionStartFile = Bind<StartFileFn>("p2p_session_start_file");
                _sessionStatus = Bind<HandleJsonFn>("p2p_session_status");
                _sessionList = Bind<JsonFn>("p2p_session_list");
                _sessionStop = Bind<StopFn>("p2p_session_stop");
                _sessionStopCancellable = Bind<StopCancellableFn>("p2p_session_stop_cancellable");
                _sessionWait = Bind<WaitFn>("p2p_session_wait");
                _sessionForget = Bind<HandleFn>("p2p_session_forget");
                _shutdown = Bind<TimeoutFn>("p2p_shutdown");
                _networkTest = Bind<StringInJsonOutFn>("p2p_network_test");
                _networkTestCancellable = Bind<StringInCancelJsonOutFn>("p2p_network_test_cancellable");
                _cancelNew = Bind<CancelNewFn>("p2p_cancel_new");
                _cancelFire = Bind<HandleFn>("p2p_cancel_fire");
                _cancelFree = Bind<HandleFn>("p2p_cancel_free");
                _provisioningParse = Bind<StringInJsonOutFn>("p2p_provisioning_parse");
                _lastError = Bind<JsonFn>("p2p_last_error");
                _lastErrorKind = Bind<JsonFn>("p2p_last_error_kind");
                _stringFree = Bind<FreeFn>("p2p_string_free");
                _setLogCallback = Bind<SetLogCallbackFn>("p2p_set_log_callback");
                if (_setLogCallback != null)
                {
                    try { _setLogCallback(LogCallbackKeepAlive, IntPtr.Zero, _logLevel); }
                    catch { /* logging is best effort */ }
                }
                AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
                _loaded = true;
            }
        }

        /// <summary>True once the library is loaded in this process.</summary>
        public static bool IsLoaded => _loaded;

        private static T? Bind<T>(string name) where T : class
        {
            IntPtr p = NativeLibraryLoader.GetExport(_library, name);
            return p == IntPtr.Zero ? null : Marshal.GetDelegateForFunctionPointer<T>(p);
        }

        private static T Need<T>(T? fn, string name) where T : class
        {
            EnsureLoaded();
            if (fn == null)
                throw new P2PException(P2PResultCode.NotSupported, "NotSupported",
                    "The native library " + NativeLibraryLoader.LoadedPath + " has no export '" + name +
                    "': it is older than this module.");
            return fn;
        }

        // ---- strings -------------------------------------------------------------------------------------------

        [return: NotNullIfNotNull("s")]
        private static byte[]? Utf8Z(string? s)
        {
            if (s == null) return null;
            int n = Encoding.UTF8.GetByteCount(s);
            var b = new byte[n + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        private static string? FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int len = 0;
            while (Marshal.ReadByte(p, len) != 0) len++;
            var buf = new byte[len];
            Marshal.Copy(p, buf, 0, len);
            return Encoding.UTF8.GetString(buf);
        }

        private static string? TakeString(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            try { return FromUtf8(p); }
            finally { _stringFree?.Invoke(p); }
        }

        /// <summary>Turns a failed result code into an exception with the thread's last error.</summary>
        private static P2PException Failure(int code, string what)
        {
            string? message = null, kind = null;
            try
            {
                if (_lastError != null && _lastError(out IntPtr m) == 0) message = TakeString(m);
                if (_lastErrorKind != null && _lastErrorKind(out IntPtr k) == 0) kind = TakeString(k);
            }
            catch { /* best effort */ }
            var rc = (P2PResultCode)code;
            return new P2PException(rc,
                string.IsNullOrEmpty(kind) ? KindFromCode(rc) : kind!,
                string.IsNullOrEmpty(message) ? what + " failed: " + rc : message!);
        }

        private static string KindFromCode(P2PResultCode rc)
        {
            switch (rc)
            {
                case P2PResultCode.InvalidConfig:
                case P2PResultCode.InvalidArgument: return "InvalidConfig";
                case P2PResultCode.InvalidHandle: return "NotFound";
                case P2PResultCode.PortInUse: return "PortInUse";
                case P2PResultCode.Panic: return "Panic";
                case P2PResultCode.Timeout: return "Timeout";
                case P2PResultCode.Provisioning: return "Provisioning";
                case P2PResultCode.NotSupported: return "NotSupported";
                case P2PResultCode.Cancelled: return "Cancelled";
                default: return "Internal";
            }
        }

        // ---- the calls -----------------------------------------------------------------------------------------

        public static string Version()
        {
            EnsureLoaded();
            var fn = Need(_version, "p2p_version");
            return FromUtf8(fn()) ?? string.Empty;
        }

        /// <summary>Starts a session; returns its handle once the local port is bound.</summary>
        public static ulong SessionStart(string configJson)
        {
            EnsureLoaded();
            var fn = Need(_sessionStart, "p2p_session_start");
            int rc = fn(Utf8Z(configJson), out ulong handle);
            if (rc != 0) throw Failure(rc, "p2p_session_start");
            return handle;
        }

        /// <summary>Starts a session from a provisioning file with optional overrides (JSON object or null).</summary>
        public static ulong SessionStartFile(string path, string? overridesJson)
        {
            EnsureLoaded();
            var fn = Need(_sessionStartFile, "p2p_session_start_file");
            int rc = fn(Utf8Z(path), Utf8Z(overridesJson), out ulong handle);
            if (rc != 0) throw Failure(rc, "p2p_session_start_file");
            return handle;
        }

        /// <summary>Starts a session from a configuration whose UTF-8 bytes (NUL-terminated) the caller
        /// owns; the bytes hold a credential, so the caller zeroes them afterwards.</summary>
        public static ulong SessionStart(byte[] configUtf8Z)
        {
            EnsureLoaded();
            var fn = Need(_sessionStart, "p2p_session_start");
            int rc = fn(configUtf8Z, out ulong handle);
            if (rc != 0) throw Failure(rc, "p2p_session_start");
            return handle;
        }

        /// <summary>UTF-8 bytes of a string with a terminating NUL.</summary>
        public static byte[] ToUtf8Z(string s) => Utf8Z(s);

        /// <summary>The status JSON of a session, or null when the handle is unknown.</summary>
        public static string? SessionStatus(ulong handle)
        {
            EnsureLoaded();
            var fn = Need(_sessionStatus, "p2p_session_status");
            int rc = fn(handle, out IntPtr json);
            if (rc == (int)P2PResultCode.InvalidHandle) return null;
            if (rc != 0) throw Failure(rc, "p2p_session_status");
            return TakeString(json);
        }

        /// <summary>The JSON array of every session's status.</summary>
        public static string SessionList()
        {
            EnsureLoaded();
            var fn = Need(_sessionList, "p2p_session_list");
            int rc = fn(out IntPtr json);
            if (rc != 0) throw Failure(rc, "p2p_session_list");
            return TakeString(json) ?? "[]";
        }

        /// <summary>Stops a session (idempotent); false when the handle is unknown. With <paramref name="cancel"/>,
        /// firing it ends the wait (P2PException Cancelled) while the stop goes on in the background.</summary>
        public static bool SessionStop(ulong handle, uint timeoutMs, NativeCancellation? cancel = null)
        {
            EnsureLoaded();
            int rc;
            if (cancel == null)
            {
                rc = Need(_sessionStop, "p2p_session_stop")(handle, timeoutMs);
            }
            else
            {
                var fn = Need(_sessionStopCancellable, "p2p_session_stop_cancellable");
                rc = cancel.Use(id => fn(handle, timeoutMs, id));
            }
            if (rc == (int)P2PResultCode.InvalidHandle) return false;
            if (rc != 0) throw Failure(rc, "p2p_session_stop");
            return true;
        }

        /// <summary>Waits up to <paramref name="timeoutMs"/> (at most 600000) for a session's state to differ from
        /// <paramref name="sinceState"/> (null: for its next change). Ok with the new status JSON in
        /// <paramref name="json"/>; Timeout, Cancelled (the token was fired) or InvalidHandle (the session is
        /// gone) with <paramref name="json"/> null. Other failures throw.</summary>
        public static P2PResultCode SessionWait(ulong handle, string? sinceState, uint timeoutMs, NativeCancellation? cancel,
            out string? json)
        {
            EnsureLoaded();
            var fn = Need(_sessionWait, "p2p_session_wait");
            byte[]? since = Utf8Z(sinceState);
            IntPtr text = IntPtr.Zero;
            int rc = cancel == null
                ? fn(handle, since, timeoutMs, 0, out text)
                : cancel.Use(id => fn(handle, since, timeoutMs, id, out text));
            json = null;
            switch ((P2PResultCode)rc)
            {
                case P2PResultCode.Ok:
                    json = TakeString(text);
                    return json == null ? P2PResultCode.InvalidHandle : P2PResultCode.Ok;
                case P2PResultCode.Timeout:
                case P2PResultCode.Cancelled:
                case P2PResultCode.InvalidHandle:
                    return (P2PResultCode)rc;
                default:
                    throw Failure(rc, "p2p_session_wait");
            }
        }

        // ---- cancellation tokens (NativeCancellation) ----------------------------------------------------------

        internal static ulong CancelNew()
        {
            EnsureLoaded();
            var fn = Need(_cancelNew, "p2p_cancel_new");
            int rc = fn(out ulong id);
            if (rc != 0) throw Failure(rc, "p2p_cancel_new");
            return id;
        }

        /// <summary>Never throws: runs in a CancellationToken callback.</summary>
        internal static void CancelFire(ulong id)
        {
            try { _cancelFire?.Invoke(id); } catch { /* the wait then ends by its timeout */ }
        }

        internal static void CancelFree(ulong id)
        {
            try { _cancelFree?.Invoke(id); } catch { /* nothing to do: the id is gone either way */ }
        }

        /// <summary>Removes a stopped session from the registry; false when the handle is unknown.</summary>
        public static bool SessionForget(ulong handle)
        {
            EnsureLoaded();
            var fn = Need(_sessionForget, "p2p_session_forget");
            int rc = fn(handle);
            if (rc == (int)P2PResultCode.InvalidHandle) return false;
            if (rc != 0) throw Failure(rc, "p2p_session_forget");
            return true;
        }

        /// <summary>Stops every session in the process. Does nothing when the library was never loaded.</summary>
        public static void Shutdown(uint timeoutMs)
        {
            if (!_loaded || _shutdown == null) return;
            int rc = _shutdown(timeoutMs);
            if (rc != 0) throw Failure(rc, "p2p_shutdown");
        }

        /// <summary>Runs the network self-test; returns its JSON report. Firing <paramref name="cancel"/> abandons it
        /// (P2PException Cancelled).</summary>
        public static string NetworkTest(string optionsJson, NativeCancellation? cancel = null)
        {
            EnsureLoaded();
            byte[] options = Utf8Z(optionsJson);
            IntPtr json = IntPtr.Zero;
            int rc;
            if (cancel == null)
            {
                rc = Need(_networkTest, "p2p_network_test")(options, out json);
            }
            else
            {
                var fn = Need(_networkTestCancellable, "p2p_network_test_cancellable");
                rc = cancel.Use(id => fn(options, id, out json));
            }
            if (rc != 0) throw Failure(rc, "p2p_network_test");
            return TakeString(json) ?? throw Failure((int)P2PResultCode.Internal, "p2p_network_test");
        }

        /// <summary>Parses a provisioning file; throws P2PException (Provisioning) with "FILE:LINE: key 'K': message".</summary>
        public static string ProvisioningParse(string path)
        {
            EnsureLoaded();
            var fn = Need(_provisioningParse, "p2p_provisioning_parse");
            int rc = fn(Utf8Z(path), out IntPtr json);
            if (rc != 0) throw Failure(rc, "p2p_provisioning_parse");
            return TakeString(json) ?? throw Failure((int)P2PResultCode.Internal, "p2p_provisioning_parse");
        }

        // ---- log -----------------------------------------------------------------------------------------------

        /// <summary>The most detailed level the library sends (1 error .. 5 trace).</summary>
        public static int LogLevel => _logLevel;

        /// <summary>Raises (never lowers below info) the level the library sends; cmdlets call it for -Debug.</summary>
        public static void RequestLogLevel(int level)
        {
            if (level < 3) level = 3;
            if (level > 5) level = 5;
            if (level == _logLevel || !_loaded || _setLogCallback == null) return;
            lock (Gate)
            {
                _logLevel = level;
                try { _setLogCallback(LogCallbackKeepAlive, IntPtr.Zero, level); }
                catch { }
            }
        }

        // Runs on the library's threads: only enqueue, never throw.
        private static void OnNativeLog(int level, IntPtr message, IntPtr userData)
        {
            try
            {
                if (Interlocked.Increment(ref _logCount) > LogQueueLimit)
                {
                    Interlocked.Decrement(ref _logCount);
                    Interlocked.Increment(ref _droppedLogs);
                    return;
                }
                LogQueue.Enqueue(new NativeLogEntry(level, FromUtf8(message) ?? ""));
            }
            catch { }
        }

        /// <summary>Drops queued log lines older than <paramref name="before"/> (written while no cmdlet listened).</summary>
        public static void DiscardLogsBefore(DateTime before)
        {
            while (LogQueue.TryPeek(out NativeLogEntry? e) && e.Time < before)
            {
                if (LogQueue.TryDequeue(out _)) Interlocked.Decrement(ref _logCount);
            }
        }

        /// <summary>Takes the next queued log line; false when none.</summary>
        public static bool TryDequeueLog([NotNullWhen(true)] out NativeLogEntry? entry)
        {
            if (LogQueue.TryDequeue(out entry))
            {
                Interlocked.Decrement(ref _logCount);
                return true;
            }
            int dropped = Interlocked.Exchange(ref _droppedLogs, 0);
            if (dropped > 0)
            {
                entry = new NativeLogEntry(2, dropped + " native log lines were dropped (queue full)");
                return true;
            }
            return false;
        }

        // ---- process exit --------------------------------------------------------------------------------------

        // Closes every session, then removes the callback so no native thread calls into a runtime that is
        // shutting down.
        private static void OnProcessExit(object? sender, EventArgs e)
        {
            try { Shutdown(2000); } catch { }
            try { _setLogCallback?.Invoke(null, IntPtr.Zero, 0); } catch { }
        }
    }
}
