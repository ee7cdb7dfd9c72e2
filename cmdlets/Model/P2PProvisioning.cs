using System.Collections.Generic;
using RemoteItP2P.Internal;

namespace RemoteItP2P
{
    /// <summary>A line the provisioning parser accepted but wants the user to see (an unknown key, ...).</summary>
    public sealed class P2PProvisioningWarning
    {
        public int Line { get; set; }
        public string? Key { get; set; }
        public string? Message { get; set; }
        public override string ToString() => "line " + Line + ": key '" + Key + "': " + Message;
    }

    /// <summary>A connectd provisioning file, as read by the native parser. Never holds the secret itself.</summary>
    public sealed class P2PProvisioning
    {
        /// <summary>Initiator (connects to a device) or Target (is a device).</summary>
        public string? Kind { get; set; }
        public string? Path { get; set; }
        public string? Name { get; set; }
        /// <summary>The device to reach (initiator: remote_address) or this device's UID (target).</summary>
        public string? DeviceId { get; set; }
        public string? User { get; set; }
        /// <summary>The file holds auth_pass (a password in clear: prefer auth_hash).</summary>
        public bool HasPassword { get; set; }
        public bool HasAuthHash { get; set; }
        public int? LocalPort { get; set; }
        public string? BindAddress { get; set; }
        public string? Encryption { get; set; }
        public int? MaxOutstanding { get; set; }
        public string? AutoConnect { get; set; }
        public string? Server { get; set; }
        public string? ServerKey { get; set; }
        public string? ProxyDestIp { get; set; }
        public int? ProxyDestPort { get; set; }
        public int? ApplicationType { get; set; }
        public P2PProvisioningWarning[] Warnings { get; set; } = System.Array.Empty<P2PProvisioningWarning>();

        internal static P2PProvisioning FromJson(string path, string json)
        {
            var j = JsonObject.ParseObject(json);
            var config = j.Object("config") ?? JsonObject.ParseObject("{}");
            bool target = j.String("kind") == "target";
            var p = new P2PProvisioning
            {
                Kind = target ? "Target" : "Initiator",
                Path = path,
                Server = config.String("server"),
                ServerKey = config.String("server_key"),
            };
            if (target)
            {
                p.DeviceId = config.String("uid");
                p.ProxyDestIp = config.String("proxy_dest_ip");
                p.ProxyDestPort = (int?)config.NullableLong("proxy_dest_port");
                p.ApplicationType = (int?)config.NullableLong("application_type");
            }
            else
            {
                p.Name = config.String("name");
                p.DeviceId = config.String("device_id");
                p.User = config.String("user");
                p.HasPassword = config.Bool("has_auth_pass");
                p.HasAuthHash = config.Bool("has_auth_hash");
                p.LocalPort = (int?)config.NullableLong("local_port");
                p.BindAddress = config.String("bind_address");
                p.Encryption = config.String("encryption");
                p.MaxOutstanding = (int?)config.NullableLong("max_outstanding");
                p.AutoConnect = config.String("autoconnect");
            }
            var warnings = new List<P2PProvisioningWarning>();
            foreach (object? w in j.Array("warnings"))
            {
                var wj = new JsonObject(w);
                warnings.Add(new P2PProvisioningWarning
                {
                    Line = (int)wj.Long("line"),
                    Key = wj.String("key"),
                    Message = wj.String("message"),
                });
            }
            p.Warnings = warnings.ToArray();
            return p;
        }
    }
}
