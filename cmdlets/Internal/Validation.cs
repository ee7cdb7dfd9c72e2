using System.Management.Automation;
using System.Text.RegularExpressions;

namespace RemoteItP2P
{
    /// <summary>Accepts a device UID in connectd's form: eight hex bytes separated by colons.</summary>
    public sealed class ValidateDeviceIdAttribute : ValidateEnumeratedArgumentsAttribute
    {
        private static readonly Regex Uid = new Regex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){7}$", RegexOptions.CultureInvariant);

        protected override void ValidateElement(object element)
        {
            string text = element as string ?? (element as PSObject)?.BaseObject as string;
            if (text == null || !Uid.IsMatch(text.Trim()))
            {
                throw new ValidationMetadataException(
                    "'" + element + "' is not a device UID: expected eight hex bytes separated by colons, like 80:00:00:00:01:00:0A:C2.");
            }
        }
    }
}
