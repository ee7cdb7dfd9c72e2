using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Management.Automation;
using System.Text.RegularExpressions;

namespace RemoteItP2P
{
    /// <summary>Accepts a device UID in connectd's form: eight hex bytes separated by colons. With AllowPath,
    /// also something that looks like a file path (has a slash, a backslash or a dot), which
    /// New-P2PConnection then reads as -ProvisioningFile.</summary>
    public sealed class ValidateDeviceIdAttribute : ValidateEnumeratedArgumentsAttribute
    {
        private static readonly Regex Uid = new Regex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){7}$", RegexOptions.CultureInvariant);

        public bool AllowPath { get; set; }

        /// <summary>True for a device UID.</summary>
        public static bool IsDeviceId([NotNullWhen(true)] string? text) => text != null && Uid.IsMatch(text.Trim());

        /// <summary>True for something that can only be a path, never a UID.</summary>
        public static bool LooksLikePath([NotNullWhen(true)] string? text) =>
            text != null && !string.IsNullOrWhiteSpace(text) && !IsDeviceId(text) && text.IndexOfAny(new[] { '/', '\\', '.', '~' }) >= 0;

        protected override void ValidateElement(object element)
        {
            string? text = element as string ?? (element as PSObject)?.BaseObject as string;
            if (IsDeviceId(text) || (AllowPath && LooksLikePath(text))) return;
            throw new ValidationMetadataException(
                "'" + element + "' is not a device UID: expected eight hex bytes separated by colons, like 80:00:00:00:01:00:0A:C2." +
                (AllowPath ? " (A provisioning file: -ProvisioningFile PATH.)" : string.Empty));
        }
    }

    /// <summary>-ProvisioningFile from the pipeline: a P2PConnection is not a file (its ToString is its local
    /// endpoint, which PowerShell would read as a drive), so it is refused with words that say so.</summary>
    public sealed class ProvisioningFileInputAttribute : ArgumentTransformationAttribute
    {
        public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
        {
            object value = inputData is PSObject p ? p.BaseObject : inputData;
            if (value is P2PConnection c || (inputData is PSObject d && IsConnectionType(d)))
            {
                throw new ArgumentTransformationMetadataException(
                    "New-P2PConnection reads provisioning files from the pipeline, not P2P connections. To open another " +
                    "connection to the same device: New-P2PConnection $c.DeviceId (Get-Credential).");
            }
            return inputData;
        }

        private static bool IsConnectionType(PSObject o)
        {
            foreach (string t in o.TypeNames) if (t.EndsWith("RemoteItP2P.P2PConnection", StringComparison.Ordinal)) return true;
            return false;
        }
    }

    /// <summary>Stop-/Wait-P2PConnection's -InputObject: a number is the Id of a connection of this process (as
    /// Stop-Job 1); a deserialized connection (a job's output) keeps its InstanceId and ProcessId, so the cmdlet
    /// can refuse it instead of acting on a local connection with the same Id.</summary>
    public sealed class P2PConnectionInputAttribute : ArgumentTransformationAttribute
    {
        public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
        {
            object value = inputData is PSObject p ? p.BaseObject : inputData;
            if (value is P2PConnection || value is P2PConnection[]) return value;
            if (value is IList list && !(value is string))
            {
                var result = new List<P2PConnection>();
                foreach (object item in list)
                {
                    P2PConnection? c = One(item);
                    if (c == null) return inputData;
                    result.Add(c);
                }
                return result.ToArray();
            }
            return (object?)One(inputData) ?? inputData;
        }

        private static P2PConnection? One(object item)
        {
            object value = item is PSObject p ? p.BaseObject : item;
            switch (value)
            {
                case P2PConnection c:
                    return c;
                case int _:
                case long _:
                case uint _:
                case ulong _:
                case short _:
                case ushort _:
                case byte _:
                    ulong id = Convert.ToUInt64(value, System.Globalization.CultureInfo.InvariantCulture);
                    return new P2PConnection { Id = id, InstanceId = P2PProcessIdentity.InstanceIdOf(id), ProcessId = P2PProcessIdentity.ProcessId, IdOnly = true };
            }
            if (item is PSObject o && o.Properties["InstanceId"] != null && o.Properties["Id"] != null)
            {
                try
                {
                    return new P2PConnection
                    {
                        Id = LanguagePrimitives.ConvertTo<ulong>(o.Properties["Id"].Value),
                        InstanceId = LanguagePrimitives.ConvertTo<Guid>(o.Properties["InstanceId"].Value),
                        ProcessId = o.Properties["ProcessId"] != null ? LanguagePrimitives.ConvertTo<int>(o.Properties["ProcessId"].Value) : 0,
                        Name = o.Properties["Name"]?.Value as string,
                        DeviceId = o.Properties["DeviceId"]?.Value as string,
                        LocalEndpoint = o.Properties["LocalEndpoint"]?.Value as string,
                    };
                }
                catch (PSInvalidCastException)
                {
                    return null;
                }
            }
            return null;
        }
    }
}
