// Every error the cmdlets report: one stable FullyQualifiedErrorId and category per kind of failure, so
// scripts can catch them (`catch { if ($_.FullyQualifiedErrorId -like 'P2PAuthenticationFailed,*') ... }`).
// The table is documented in about_RemoteItP2P / the cmdlets' help.

using System;
using System.Management.Automation;
using System.Text.RegularExpressions;
using RemoteItP2P.Native;

namespace RemoteItP2P
{
    /// <summary>A failure reported by the native library: its result code, stable kind and message.</summary>
    public class P2PException : Exception
    {
        public P2PException(P2PResultCode code, string kind, string message) : base(message)
        {
            Code = code;
            Kind = kind;
        }

        /// <summary>The C ABI's result code.</summary>
        public P2PResultCode Code { get; }

        /// <summary>The stable error kind ("AuthFailed", "PortInUse", "UnknownUid", ...).</summary>
        public string Kind { get; }
    }

    /// <summary>A provisioning file was refused; File, Line and Key say where.</summary>
    public sealed class P2PProvisioningException : P2PException
    {
        private static readonly Regex Located = new Regex(@":(?<line>\d+): (key '(?<key>[^']*)': )?", RegexOptions.CultureInvariant);

        public P2PProvisioningException(string file, P2PException inner)
            : base(inner.Code, inner.Kind, inner.Message)
        {
            File = file;
            Match m = Located.Match(inner.Message);
            if (m.Success)
            {
                Line = int.Parse(m.Groups["line"].Value, System.Globalization.CultureInfo.InvariantCulture);
                if (m.Groups["key"].Success) Key = m.Groups["key"].Value;
            }
        }

        public string File { get; }

        /// <summary>1-based line of the problem; null for a problem with the whole file.</summary>
        public int? Line { get; }

        /// <summary>The key at fault, or null.</summary>
        public string? Key { get; }
    }

    /// <summary>The native library could not be found or loaded.</summary>
    public sealed class P2PNativeLibraryException : Exception
    {
        public P2PNativeLibraryException(string message) : base(message) { }
    }

    /// <summary>A connection ended (or never came up) with an error reported in its status.</summary>
    public sealed class P2PConnectionException : Exception
    {
        private static readonly Regex Fingerprints = new Regex(
            @"expected (?<expected>SHA256:[A-Za-z0-9+/]{43}), the device presented (?<presented>SHA256:[A-Za-z0-9+/]{43})?",
            RegexOptions.CultureInvariant);

        private static readonly Regex Introduced = new Regex(
            @"the server introduced (?<presented>SHA256:[A-Za-z0-9+/]{43})",
            RegexOptions.CultureInvariant);

        public P2PConnectionException(string kind, string message, P2PConnection? connection) : base(message)
        {
            Kind = kind;
            Connection = connection;
            Match m = Fingerprints.Match(message);
            if (kind == "PeerKeyMismatch" && m.Success)
            {
                ExpectedFingerprint = m.Groups["expected"].Value;
                if (m.Groups["presented"].Success) PresentedFingerprint = m.Groups["presented"].Value;
            }
            Match introduced = Introduced.Match(message);
            if (kind == "PeerKeyUnknown" && introduced.Success)
            {
                PresentedFingerprint = introduced.Groups["presented"].Value;
            }
        }

        public string Kind { get; }
        /// <summary>The connection's last status; null when it was gone before one was read.</summary>
        public P2PConnection? Connection { get; }

        /// <summary>P2PDeviceKeyMismatch: the fingerprint pinned for the device (known_devices or -DeviceKey).</summary>
        public string? ExpectedFingerprint { get; }

        /// <summary>P2PDeviceKeyMismatch: the fingerprint of the key the device proved; null when the server
        /// introduced the device without any key. Confirm it on the device, then -AcceptDeviceKey it.
        /// P2PDeviceKeyUnknown: the fingerprint the server introduced the device with (its word only; null
        /// when it gave none). Compare it with the device's own, then pass that with -DeviceKey.</summary>
        public string? PresentedFingerprint { get; }
    }

    /// <summary>No connection has the Id or Name asked for (stopped, removed, or never made).</summary>
    public sealed class P2PConnectionNotFoundException : ItemNotFoundException
    {
        public P2PConnectionNotFoundException(string message) : base(message) { }
    }

    /// <summary>A connection object made by another process (a job's output, a deserialized object): its Id
    /// means nothing here, so the cmdlets refuse it rather than act on a local connection with the same Id.</summary>
    public sealed class P2PConnectionFromOtherProcessException : InvalidOperationException
    {
        public P2PConnectionFromOtherProcessException(string message) : base(message) { }
    }

    /// <summary>Another open connection has the name asked for.</summary>
    public sealed class P2PNameInUseException : InvalidOperationException
    {
        public P2PNameInUseException(string message) : base(message) { }
    }

    /// <summary>The native library's "no server" and "no server key" (kinds NoServer, NoServerKey) in the
    /// cmdlets' terms: the parameters and environment variables that give them. The library decides that one
    /// is missing (p2p_config's resolution rule); only the wording is the module's.</summary>
    public static class ServerErrors
    {
        public const string NoServer = "NoServer";
        public const string NoServerKey = "NoServerKey";

        /// <summary><paramref name="e"/> reworded when it is NoServer or NoServerKey; otherwise itself.</summary>
        public static P2PException InCmdletTerms(P2PException e, bool fromFile, bool test = false)
        {
            switch (e.Kind)
            {
                case NoServer when test:
                    return new P2PException(e.Code, e.Kind,
                        "No server to test: give -Server host:port (Test-P2PNetwork -Server server.example.com:5980), " +
                        "or set $env:P2P_SERVER.");
                case NoServer:
                    return new P2PException(e.Code, e.Kind,
                        "No server: give -Server host:port, or set $env:P2P_SERVER (for example " +
                        "$env:P2P_SERVER = 'server.example.com:5980')" +
                        (fromFile ? ", or add a 'server' line to the provisioning file" : string.Empty) + ".");
                case NoServerKey:
                    return new P2PException(e.Code, e.Kind,
                        "No server key: give -ServerKey (the server_key 'p2p-server init' printed), or set $env:P2P_SERVER_KEY" +
                        (fromFile ? ", or add a 'server_key' line to the provisioning file" : string.Empty) + ".");
                default:
                    return e;
            }
        }
    }

    /// <summary>Builds ErrorRecords with the module's stable ids and categories.</summary>
    public static class ErrorIds
    {
        public const string NotFound = "P2PConnectionNotFound";
        public const string NameInUse = "P2PNameInUse";
        public const string Timeout = "P2PConnectionTimeout";
        public const string WaitTimeout = "P2PWaitTimeout";
        public const string Cancelled = "P2PConnectionCancelled";
        public const string ProvisioningNotFound = "P2PProvisioningFileNotFound";
        public const string ProvisioningInvalid = "P2PProvisioningInvalid";
        public const string NativeLibrary = "P2PNativeLibraryNotLoaded";
        public const string StopFailed = "P2PStopFailed";
        public const string OtherProcess = "P2PConnectionFromOtherProcess";

        /// <summary>What to do about an error of this id (ErrorRecord.ErrorDetails.RecommendedAction).</summary>
        public static string? RecommendedAction(string id)
        {
            switch (id)
            {
                case "P2PInvalidConfiguration": return "Check the parameters: -Server host:port and -ServerKey (or $env:P2P_SERVER and $env:P2P_SERVER_KEY), the device UID, -BindAddress.";
                case "P2PPortInUse": return "Choose another -LocalPort, or -LocalPort 0 to let the system pick a free one.";
                case "P2PUdpBindFailed": return "Check that this machine may open UDP sockets (firewall, port exhaustion).";
                case "P2PAuthenticationFailed": return "Check the user name and password (Get-Credential), or the provisioning file's user_id and auth_pass/auth_hash.";
                case "P2PThrottled": return "Too many failed logins: wait for the server's throttle window (60 s by default, longer after repeated locks), then retry with the right password.";
                case "P2PDeviceNotFound": return "Check the device UID; the server's operator lists devices with 'p2p-server device list'.";
                case "P2PDeviceNotShared": return "Ask the device's owner to share it with you ('p2p-server share add UID USER').";
                case "P2PDeviceOffline": return "Start the target on the device (connectd -f target.conf) and check its network, then retry.";
                case "P2PDeviceSecretRejected": return "The device's secret does not match the server's: re-provision the device.";
                case "P2PServerUnreachable": return "Check -Server (host:port) and that TCP to it is allowed; Test-P2PNetwork diagnoses the network.";
                case "P2PServerKeyMismatch": return "Check -ServerKey (or $env:P2P_SERVER_KEY) against the server_key that 'p2p-server init' printed.";
                case "P2PDeviceKeyMismatch": return "The device proved another key than the pinned one: a re-installed device, or the server or network intercepting. Read its fingerprint on the device (connectd --fingerprint -f TARGET-FILE); if it is the exception's PresentedFingerprint, connect again with -AcceptDeviceKey and that fingerprint.";
                case "P2PDeviceKeyUnknown": return "This device's key is neither pinned nor given, and the server's word for it is not trusted. Read its fingerprint on the device (connectd --fingerprint -f TARGET-FILE) and connect with -DeviceKey and that fingerprint (it is pinned for later connections); or, accepting that this first connection trusts the server, use -TrustFirstUse.";
                case "P2PLimitReached": return "Stop connections you no longer need (Get-P2PConnection | Stop-P2PConnection), or ask the server's operator to raise the limit.";
                case "P2PConnectionFailed": return "Retry; Test-P2PNetwork shows whether UDP to the server and a direct path are possible. -AutoReconnect re-establishes lost sessions.";
                case Timeout: return "Raise -TimeoutSec, or use -NoWait and Wait-P2PConnection; Test-P2PNetwork diagnoses the network.";
                case WaitTimeout: return "Raise -TimeoutSec, or check the connection's LastError (Get-P2PConnection | Format-List).";
                case ProvisioningInvalid: return "Fix the provisioning file at the line and key the message names (Get-P2PProvisioning reads it).";
                case ProvisioningNotFound: return "Check the path of the provisioning file.";
                case NotFound: return "Get-P2PConnection lists the open connections of this process.";
                case NameInUse: return "Choose another -Name, or stop the connection that has it.";
                case OtherProcess: return "Stop or wait for the connection in the process that made it (for a job: inside the job's script block).";
                case NativeLibrary: return "Rebuild or reinstall the module; $env:REMOTEITP2P_NATIVE_LIB may point at the library.";
                case StopFailed: return "Retry Stop-P2PConnection with a larger -TimeoutSec.";
                case "P2PNativePanic": return "A bug in the native library: please report it with the message.";
                default: return null;
            }
        }

        /// <summary>An ErrorRecord with its RecommendedAction filled in from the id.</summary>
        public static ErrorRecord Record(Exception e, string id, ErrorCategory category, object? target)
        {
            var record = new ErrorRecord(e, id, category, target);
            string? action = RecommendedAction(id);
            if (action != null) record.ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = action };
            return record;
        }

        /// <summary>The id and category for an error kind (the native library's or the driver's).</summary>
        public static void Classify(string kind, out string id, out ErrorCategory category)
        {
            switch (kind)
            {
                case "InvalidConfig":
                case ServerErrors.NoServer:
                case ServerErrors.NoServerKey:
                case "InvalidArgument": id = "P2PInvalidConfiguration"; category = ErrorCategory.InvalidArgument; return;
                case "PortInUse": id = "P2PPortInUse"; category = ErrorCategory.ResourceUnavailable; return;
                case "UdpBind": id = "P2PUdpBindFailed"; category = ErrorCategory.ResourceUnavailable; return;
                case "BadUser":
                case "AuthFailed": id = "P2PAuthenticationFailed"; category = ErrorCategory.AuthenticationError; return;
                case "Throttled": id = "P2PThrottled"; category = ErrorCategory.LimitsExceeded; return;
                case "UnknownUid": id = "P2PDeviceNotFound"; category = ErrorCategory.ObjectNotFound; return;
                case "NotShared": id = "P2PDeviceNotShared"; category = ErrorCategory.PermissionDenied; return;
                case "DeviceOffline": id = "P2PDeviceOffline"; category = ErrorCategory.ConnectionError; return;
                case "BadSecret": id = "P2PDeviceSecretRejected"; category = ErrorCategory.SecurityError; return;
                case "ServerUnreachable": id = "P2PServerUnreachable"; category = ErrorCategory.ConnectionError; return;
                case "ServerKeyMismatch": id = "P2PServerKeyMismatch"; category = ErrorCategory.SecurityError; return;
                case "PeerKeyMismatch": id = "P2PDeviceKeyMismatch"; category = ErrorCategory.SecurityError; return;
                case "PeerKeyUnknown": id = "P2PDeviceKeyUnknown"; category = ErrorCategory.SecurityError; return;
                case "LimitReached": id = "P2PLimitReached"; category = ErrorCategory.LimitsExceeded; return;
                case "SessionFailed":
                case "PeerTimeout":
                case "P2PFailed": id = "P2PConnectionFailed"; category = ErrorCategory.ConnectionError; return;
                case "Timeout": id = Timeout; category = ErrorCategory.OperationTimeout; return;
                case "Provisioning": id = ProvisioningInvalid; category = ErrorCategory.ParserError; return;
                case "InvalidHandle": id = NotFound; category = ErrorCategory.ObjectNotFound; return;
                case "Panic": id = "P2PNativePanic"; category = ErrorCategory.NotSpecified; return;
                case "NotSupported": id = "P2PNotSupported"; category = ErrorCategory.NotImplemented; return;
                default: id = "P2PInternalError"; category = ErrorCategory.NotSpecified; return;
            }
        }

        public static ErrorRecord FromException(Exception e, object? target)
        {
            switch (e)
            {
                case P2PException p:
                {
                    Classify(p.Kind, out string id, out ErrorCategory category);
                    return Record(p, id, category, target);
                }
                case P2PConnectionException c:
                {
                    Classify(c.Kind, out string id, out ErrorCategory category);
                    return Record(c, id, category, target ?? c.Connection?.DeviceId);
                }
                case P2PNativeLibraryException n:
                    return Record(n, NativeLibrary, ErrorCategory.ResourceUnavailable, target);
                case P2PConnectionNotFoundException nf:
                    return Record(nf, NotFound, ErrorCategory.ObjectNotFound, target);
                case P2PConnectionFromOtherProcessException op:
                    return Record(op, OtherProcess, ErrorCategory.InvalidArgument, target);
                case P2PNameInUseException ni:
                    return Record(ni, NameInUse, ErrorCategory.ResourceExists, target);
                default:
                    return Record(e, "P2PInternalError", ErrorCategory.NotSpecified, target);
            }
        }

        public static ErrorRecord Make(string id, ErrorCategory category, string message, object? target)
        {
            Exception e;
            switch (id)
            {
                case NotFound: e = new P2PConnectionNotFoundException(message); break;
                case NameInUse: e = new P2PNameInUseException(message); break;
                case OtherProcess: e = new P2PConnectionFromOtherProcessException(message); break;
                default: e = new InvalidOperationException(message); break;
            }
            return Record(e, id, category, target);
        }
    }
}
