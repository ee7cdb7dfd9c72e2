// The objects the cmdlets return. Built from the native library's JSON; no protocol knowledge here.

using System;
using System.Collections.Generic;
using RemoteItP2P.Internal;

namespace RemoteItP2P
{
    /// <summary>The life cycle of a connection (the native TunnelState). The numbers are what ConvertTo-Json
    /// writes without -EnumsAsStrings: new states take new numbers, existing ones keep theirs.</summary>
    public enum P2PConnectionState
    {
        Connecting = 0,
        Connected = 1,
        Reconnecting = 2,
        Stopped = 3,
        Failed = 4,
        /// <summary>The session is up but nothing was heard from the device for 5 s (PeerSilentMs): streams may
        /// stall. Back to Connected when the device is heard again, or Reconnecting/Failed when the session
        /// times out (20 s of silence). The local port stays open.</summary>
        Degraded = 5,
    }

    /// <summary>Which way a connection's packets go.</summary>
    public enum P2PPath
    {
        Direct,
        Relayed,
        PortMapped,
    }

    /// <summary>The IP version a direct path runs over.</summary>
    public enum P2PPathFamily
    {
        IPv4,
        IPv6,
    }

    /// <summary>Packet protection. ChaCha20Poly1305 is the default; the others exist for connectd compatibility and are weak.</summary>
    public enum P2PEncryption
    {
        None,
        RC4,
        XXTEA,
        ChaCha20Poly1305,
    }

    /// <summary>The identity of this process's connections: Ids restart at 1 in every process (a job, another
    /// pwsh), so each connection also carries an InstanceId whose first half is unique to the process that made it.</summary>
    public static class P2PProcessIdentity
    {
        private static readonly byte[] Prefix = Guid.NewGuid().ToByteArray();

        /// <summary>This process's id.</summary>
        public static readonly int ProcessId = System.Diagnostics.Process.GetCurrentProcess().Id;

        /// <summary>The InstanceId of this process's connection with handle <paramref name="id"/>.</summary>
        public static Guid InstanceIdOf(ulong id)
        {
            var b = (byte[])Prefix.Clone();
            byte[] h = BitConverter.GetBytes(id);
            for (int i = 0; i < 8; i++) b[8 + i] ^= h[i];
            return new Guid(b);
        }

        /// <summary>True when <paramref name="instanceId"/> names a connection made in this process.</summary>
        public static bool Owns(Guid instanceId)
        {
            byte[] b = instanceId.ToByteArray();
            for (int i = 0; i < 8; i++) if (b[i] != Prefix[i]) return false;
            return true;
        }
    }

    /// <summary>One tunnel: a local TCP port that reaches a device. A snapshot; Get-P2PConnection refreshes it
    /// (or its Refresh() method, in place).</summary>
    public sealed class P2PConnection
    {
        /// <summary>The handle of the session in this process (unique there, never reused; another process has
        /// its own Id 1). Short, for typing: scripts that pass objects around use InstanceId.</summary>
        public ulong Id { get; set; }
        /// <summary>Unique across processes: Stop- and Wait-P2PConnection refuse a connection made by another
        /// process (a job's output, a deserialized object) instead of acting on a local one with the same Id.</summary>
        public Guid InstanceId { get; set; }
        /// <summary>The process that owns the connection (its local port lives and dies with it).</summary>
        public int ProcessId { get; set; }
        public string? Name { get; set; }
        public string? DeviceId { get; set; }
        /// <summary>address:port to give ssh, a browser or any TCP client.</summary>
        public string? LocalEndpoint { get; set; }
        public P2PConnectionState State { get; set; }
        public P2PPath? Path { get; set; }
        /// <summary>IPv4 or IPv6: the IP version the Direct (or PortMapped) path uses; null while Relayed or not
        /// connected. Two dual-stack hosts go Direct over IPv6 even behind symmetric IPv4 NATs.</summary>
        public P2PPathFamily? PathFamily { get; set; }
        public P2PEncryption? Encryption { get; set; }
        /// <summary>Encryption ChaCha20Poly1305 (mode 3): the AEAD agreed with the device, "AES-256-GCM" when both
        /// ends have AES instructions, else "ChaCha20-Poly1305"; null in the weak modes and before the first
        /// session.</summary>
        public string? Aead { get; set; }
        /// <summary>Encryption ChaCha20Poly1305 with device keys on both ends: the fingerprint (SHA256:...) of
        /// the key the device proved in the end-to-end handshake; null in a legacy session and before the
        /// first session.</summary>
        public string? PeerFingerprint { get; set; }
        public string? PeerEndpoint { get; set; }
        public string? SessionId { get; set; }
        public ulong BytesSent { get; set; }
        public ulong BytesReceived { get; set; }
        /// <summary>Round-trip time in milliseconds, once measured.</summary>
        public double? RttMs { get; set; }
        public ulong PacketsLost { get; set; }
        public int StreamsOpen { get; set; }
        public DateTime? StartedAt { get; set; }
        public DateTime? ConnectedAt { get; set; }
        /// <summary>Milliseconds since the last packet from the device while the session is up (Connected or
        /// Degraded; refreshed every 250 ms); null while no session is up. A live device is heard about every
        /// second; from 5000 the state is Degraded.</summary>
        public long? PeerSilentMs { get; set; }
        /// <summary>Mode 3: how often this side moved its direction of the current session to a new key
        /// (every 2 minutes or gibibyte, when the device and the server support it); 0 otherwise.</summary>
        public ulong KeyUpdatesSent { get; set; }
        /// <summary>The same for the device's direction.</summary>
        public ulong KeyUpdatesReceived { get; set; }
        /// <summary>How many times the session was lost and a new one attempted (AutoReconnect); attempts,
        /// whether or not they succeeded.</summary>
        public int ReconnectAttempts { get; set; }
        /// <summary>The stable kind of the last error ("AuthFailed", "DeviceOffline", ...), or null.</summary>
        public string? LastErrorKind { get; set; }
        /// <summary>The last error's message, or null.</summary>
        public string? LastError { get; set; }

        /// <summary>The local port alone (handy for ssh -p).</summary>
        public int LocalPort
        {
            get
            {
                string? endpoint = LocalEndpoint;
                if (endpoint == null || endpoint.Length == 0) return 0;
                int colon = endpoint.LastIndexOf(':');
                return colon >= 0 && int.TryParse(endpoint.Substring(colon + 1), out int p) ? p : 0;
            }
        }

        /// <summary>True while the session is up and carries connections (Connected or Degraded).</summary>
        internal bool IsUp => State == P2PConnectionState.Connected || State == P2PConnectionState.Degraded;

        /// <summary>True while the local port is open (not Stopped or Failed).</summary>
        public bool IsActive => State != P2PConnectionState.Stopped && State != P2PConnectionState.Failed;

        /// <summary>Made from a bare Id (Stop-P2PConnection 1): to be looked up.</summary>
        internal bool IdOnly { get; set; }

        /// <summary>True when the connection was made in this process (Stop-/Wait-P2PConnection can act on it).</summary>
        public bool IsFromThisProcess => P2PProcessIdentity.Owns(InstanceId);

        public override string ToString() => LocalEndpoint ?? string.Empty;

        /// <summary>Re-reads the connection's live status into this object and returns it. A connection that
        /// no longer exists in this process (stopped, or closed when the module was removed) becomes Stopped.</summary>
        public P2PConnection Refresh()
        {
            if (!IsFromThisProcess) return this;
            string? json = Native.NativeMethods.SessionStatus(Id);
            if (json == null)
            {
                if (IsActive)
                {
                    State = P2PConnectionState.Stopped;
                    StreamsOpen = 0;
                }
                return this;
            }
            P2PConnection now = FromJson(JsonObject.ParseObject(json));
            foreach (var p in typeof(P2PConnection).GetProperties())
            {
                if (p.CanWrite && p.GetSetMethod() != null) p.SetValue(this, p.GetValue(now));
            }
            return this;
        }

        internal static P2PConnection FromJson(JsonObject j)
        {
            var c = new P2PConnection
            {
                Id = j.ULong("id"),
                InstanceId = P2PProcessIdentity.InstanceIdOf(j.ULong("id")),
                ProcessId = P2PProcessIdentity.ProcessId,
                Name = j.String("name"),
                DeviceId = j.String("device_id"),
                LocalEndpoint = j.String("local_endpoint"),
                State = ParseEnum(j.String("state"), P2PConnectionState.Failed),
                Encryption = ParseNullableEnum<P2PEncryption>(j.String("encryption")),
                Aead = j.String("aead"),
                PeerFingerprint = j.String("peer_fingerprint"),
                PeerEndpoint = j.String("peer_endpoint"),
                SessionId = j.String("session_id"),
                BytesSent = j.ULong("bytes_sent"),
                BytesReceived = j.ULong("bytes_received"),
                RttMs = j.NullableDouble("rtt_ms"),
                PacketsLost = j.ULong("packets_lost"),
                StreamsOpen = (int)j.Long("streams_open"),
                StartedAt = j.Time("started_at"),
                ConnectedAt = j.Time("connected_at"),
                PeerSilentMs = j.NullableLong("peer_silent_ms"),
                KeyUpdatesSent = j.ULong("key_updates_sent"),
                KeyUpdatesReceived = j.ULong("key_updates_received"),
                ReconnectAttempts = (int)j.Long("reconnect_attempts"),
            };
            string? path = j.String("path");
            if (!string.IsNullOrEmpty(path)) c.Path = ParseEnum(path, P2PPath.Relayed);
            string? family = j.String("path_family");
            if (!string.IsNullOrEmpty(family)) c.PathFamily = ParseEnum(family, P2PPathFamily.IPv4);
            JsonObject? error = j.Object("last_error");
            if (error != null)
            {
                c.LastErrorKind = error.String("kind");
                c.LastError = error.String("message");
            }
            // A failed connection's port is closed: do not offer it to ssh or a browser.
            if (c.State == P2PConnectionState.Failed) c.LocalEndpoint = null;
            return c;
        }

        internal static List<P2PConnection> ListFromJson(string json)
        {
            return JsonObject.ParseArray(json).ConvertAll(FromJson);
        }

        private static T? ParseNullableEnum<T>(string? text) where T : struct
        {
            return !string.IsNullOrEmpty(text) && Enum.TryParse(text, true, out T value) ? value : (T?)null;
        }

        private static T ParseEnum<T>(string? text, T fallback) where T : struct
        {
            return Enum.TryParse(text, true, out T value) ? value : fallback;
        }
    }
}
