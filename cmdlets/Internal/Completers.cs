// Tab completion of -Name and -Id from the connections open in this process.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Management.Automation;
using System.Management.Automation.Language;
using RemoteItP2P.Native;

namespace RemoteItP2P
{
    internal static class CompletionSource
    {
        /// <summary>The open connections, or none when the library cannot be used (completion never fails).</summary>
        public static List<P2PConnection> Connections()
        {
            try
            {
                return P2PConnection.ListFromJson(NativeMethods.SessionList());
            }
            catch (Exception)
            {
                return new List<P2PConnection>();
            }
        }

        public static string Quote(string s) =>
            s.IndexOfAny(new[] { ' ', '\'', '"', '$', '`', ',', ';', '(', ')', '{', '}' }) >= 0 ? "'" + s.Replace("'", "''") + "'" : s;
    }

    /// <summary>Completes -Name with the names of open connections.</summary>
    public sealed class ConnectionNameCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            string prefix = (wordToComplete ?? string.Empty).Trim('\'', '"');
            var pattern = new WildcardPattern(prefix + "*", WildcardOptions.IgnoreCase);
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (P2PConnection c in CompletionSource.Connections())
            {
                if (c.Name == null || !pattern.IsMatch(c.Name) || !seen.Add(c.Name)) continue;
                yield return new CompletionResult(CompletionSource.Quote(c.Name), c.Name, CompletionResultType.ParameterValue,
                    c.Name + " -> " + c.DeviceId + " on " + c.LocalEndpoint + " (" + c.State + ")");
            }
        }
    }

    /// <summary>Completes -Id with the ids of open connections.</summary>
    public sealed class ConnectionIdCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            string prefix = wordToComplete ?? string.Empty;
            foreach (P2PConnection c in CompletionSource.Connections())
            {
                string id = c.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
                if (!id.StartsWith(prefix, StringComparison.Ordinal)) continue;
                yield return new CompletionResult(id, id + " " + c.Name, CompletionResultType.ParameterValue,
                    c.Name + " -> " + c.DeviceId + " on " + c.LocalEndpoint + " (" + c.State + ")");
            }
        }
    }

    /// <summary>Completes -DeviceId with the UIDs of this process's connections (not file names).</summary>
    public sealed class DeviceIdCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            string prefix = (wordToComplete ?? string.Empty).Trim('\'', '"');
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (P2PConnection c in CompletionSource.Connections())
            {
                if (c.DeviceId == null || !c.DeviceId.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || !seen.Add(c.DeviceId)) continue;
                yield return new CompletionResult(c.DeviceId, c.DeviceId, CompletionResultType.ParameterValue,
                    c.DeviceId + " (" + c.Name + ", " + c.State + ")");
            }
        }
    }
}
