using System.Collections.Generic;
using System.Management.Automation;
using RemoteItP2P.Internal;
using RemoteItP2P.Native;

namespace RemoteItP2P.Commands
{
    /// <summary>Runs the network self-test (NAT behaviour, port mapping, the server) and reports it.</summary>
    [Cmdlet(VerbsDiagnostic.Test, "P2PNetwork")]
    [OutputType("RemoteItP2P.P2PNetworkTest")]
    public sealed class TestP2PNetworkCommand : P2PCmdlet
    {
        /// <summary>host:port of the server; default $env:P2P_SERVER.</summary>
        [Parameter(Position = 0)]
        [ValidateNotNullOrEmpty]
        public string? Server { get; set; }

        /// <summary>The server's public key (base64, from p2p-server init); default $env:P2P_SERVER_KEY. With it the
        /// test checks the key and asks the server which UDP ports to probe; without it, it probes the default ports.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? ServerKey { get; set; }

        /// <summary>How long each probe may take (seconds).</summary>
        [Parameter]
        [ValidateRange(1, 120)]
        public int TimeoutSec { get; set; } = 5;

        protected override void ProcessRecord()
        {
            var options = new Dictionary<string, object> { ["timeout_ms"] = TimeoutSec * 1000 };
            if (Server != null) options["server"] = Server;
            if (ServerKey != null) options["server_key"] = ServerKey;
            Dictionary<string, object> environment = HostEnvironment();
            if (environment.Count > 0) options["environment"] = environment;
            string json;
            try
            {
                using NativeCancellation cancel = NewNativeCancellation();
                json = NativeMethods.NetworkTest(Json.Write(options), cancel);
            }
            catch (P2PException e) when (e.Code == P2PResultCode.Cancelled)
            {
                return; // Ctrl+C: the test was abandoned and the pipeline is stopping
            }
            catch (P2PException e)
            {
                Throw(ServerErrors.InCmdletTerms(e, fromFile: false, test: true), Server);
                return;
            }
            WriteNativeLog();
            PSObject report = ToPSObject(JsonObject.ParseObject(json), "RemoteItP2P.P2PNetworkTest");
            // "text" is the report as connectd -n prints it: Report reads better than Text.
            PSPropertyInfo text = report.Properties["Text"];
            if (text != null)
            {
                report.Properties.Remove("Text");
                report.Properties.Add(new PSNoteProperty("Report", text.Value));
            }
            WriteObject(report);
        }

        /// <summary>A JSON object as a PSObject whose property names are PascalCase (nat_type -> NatType).</summary>
        internal static PSObject ToPSObject(JsonObject j, string? typeName)
        {
            var o = new PSObject();
            if (typeName != null) o.TypeNames.Insert(0, typeName);
            foreach (string key in j.Keys)
            {
                o.Properties.Add(new PSNoteProperty(Pascal(key), Convert(j.Raw(key))));
            }
            return o;
        }

        private static object? Convert(object? value)
        {
            switch (value)
            {
                case Dictionary<string, object?> d: return ToPSObject(new JsonObject(d), null);
                case List<object?> l: return l.ConvertAll(Convert).ToArray();
                default: return value;
            }
        }

        private static string Pascal(string snake)
        {
            var parts = snake.Split('_');
            for (int i = 0; i < parts.Length; i++)
            {
                if (parts[i].Length > 0) parts[i] = char.ToUpperInvariant(parts[i][0]) + parts[i].Substring(1);
            }
            return string.Join(string.Empty, parts);
        }
    }
}
