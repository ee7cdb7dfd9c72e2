// The objects the cmdlets return. Built from the native library's JSON; no protocol knowledge here.

using System;
using System.Collections.Generic;
using RemoteItP2P.Internal;

namespace RemoteItP2P
{
    /// <summary>The life cycle of a connection (the native TunnelState).</summary>
    public enum P2PConnectionState
    {
        Connecting,
        Connected,
        Reconnecting,
        Stopped,
        Failed,
    }

    /// <summary>Which way a connection's packets go.</summary>
    public enum P2PPath
    {
        Direct,
        Relayed,
        PortMapped,
    }

    /// <summary>Packet protection. ChaCha20Poly1305 is the default; the others exist for connectd compatibility and are weak.</summary>
    public enum P2PEncryption
    {
        None,
        RC4,
        XXTEA,
        ChaCha20Poly1305,
    }

    /// <summary>One tunnel: a local TCP port that reaches a device. A snapshot; Get-P2PConnection refreshes it.</summary>
    public sealed class P2PConnection
    {
        /// <summary>The handle of the session in this process (unique, never reused).</summary>
        public ulong Id { get; set; }
        public string Name { get; set; }
        public string DeviceId { get; set; }
        /// <summary>address:port to give ssh, a browser or any TCP client.</summary>
        public string LocalEndpoint { get; set; }
        public P2PConnectionState State { get; set; }
        public P2PPath? Path { get; set; }
        public string Encryption { get; set; }
        public string PeerEndpoint { get; set; }
        public string SessionId { get; set; }
        public ulong BytesSent { get; set; }
        public ulong BytesReceived { get; set; }
        /// <summary>Round-trip time in milliseconds, once measured.</summary>
        public double? RttMs { get; set; }
        public ulong PacketsLost { get; set; }
        public int StreamsOpen { get; set; }
        public DateTime? StartedAt { get; set; }
        public DateTime? ConnectedAt { get; set; }
        public int Reconnects { get; set; }
        /// <summary>The stable kind of the last error ("AuthFailed", "DeviceOffline", ...), or null.</summary>
        public string LastErrorKind { get; set; }
        /// <summary>The last error's message, or null.</summary>
        public string LastError { get; set; }

        /// <summary>The local port alone (handy for ssh -p).</summary>
        public int LocalPort
        {
            get
            {
                if (string.IsNullOrEmpty(LocalEndpoint)) return 0;
                int colon = LocalEndpoint.LastIndexOf(':');
                return colon >= 0 && int.TryParse(LocalEndpoint.Substring(colon + 1), out int p) ? p : 0;
            }
        }

        /// <summary>True while the local port is open (not Stopped or Failed).</summary>
        public bool IsActive => State != P2PConnectionState.Stopped && State != P2PConnectionState.Failed;

        public override string ToString() => LocalEndpoint ?? string.Empty;

        internal static P2PConnection FromJson(JsonObject j)
        {
            var c = new P2PConnection
            {
                Id = j.ULong("id"),
                Name = j.String("name"),
                DeviceId = j.String("device_id"),
                LocalEndpoint = j.String("local_endpoint"),
                State = ParseEnum(j.String("state"), P2PConnectionState.Failed),
                Encryption = j.String("encryption"),
                PeerEndpoint = j.String("peer_endpoint"),
                SessionId = j.String("session_id"),
                BytesSent = j.ULong("bytes_sent"),
                BytesReceived = j.ULong("bytes_received"),
                RttMs = j.NullableDouble("rtt_ms"),
                PacketsLost = j.ULong("packets_lost"),
                StreamsOpen = (int)j.Long("streams_open"),
                StartedAt = j.Time("started_at"),
                ConnectedAt = j.Time("connected_at"),
                Reconnects = (int)j.Long("reconnects"),
            };
            string path = j.String("path");
            if (!string.IsNullOrEmpty(path)) c.Path = ParseEnum(path, P2PPath.Relayed);
            JsonObject error = j.Object("last_error");
            if (error != null)
            {
                c.LastErrorKind = error.String("kind");
                c.LastError = error.String("message");
            }
            return c;
        }

        internal static List<P2PConnection> ListFromJson(string json)
        {
            return JsonObject.ParseArray(json).ConvertAll(FromJson);
        }

        private static T ParseEnum<T>(string text, T fallback) where T : struct
        {
            return Enum.TryParse(text, true, out T value) ? value : fallback;
        }
    }
}
