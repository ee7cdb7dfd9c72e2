using System;
using RemoteItP2P.Native;

namespace RemoteItP2P
{
    /// <summary>Called by RemoteItP2P.psm1's OnRemove: sessions belong to the process, and removing the
    /// module closes them all so no local port stays open. (Process exit is handled by NativeMethods.)</summary>
    public static class ModuleLifetime
    {
        /// <summary>Stops every connection, waiting up to <paramref name="timeoutMs"/> in all. Never throws.</summary>
        public static string? CloseAll(uint timeoutMs = 10000)
        {
            try
            {
                NativeMethods.Shutdown(timeoutMs);
                return null;
            }
            catch (Exception e)
            {
                return e.Message;
            }
        }

        /// <summary>The open (active) connections of the process, as "name (Id n, endpoint)"; none when the
        /// library was never loaded. Never throws.</summary>
        public static string[] OpenConnections()
        {
            try
            {
                if (!NativeMethods.IsLoaded) return new string[0];
                var list = new System.Collections.Generic.List<string>();
                foreach (P2PConnection c in P2PConnection.ListFromJson(NativeMethods.SessionList()))
                {
                    if (c.IsActive) list.Add(c.Name + " (Id " + c.Id + ", " + c.LocalEndpoint + ")");
                }
                return list.ToArray();
            }
            catch (Exception)
            {
                return new string[0];
            }
        }

        /// <summary>The native library's version and where it was loaded from.</summary>
        public static string NativeVersion()
        {
            NativeMethods.EnsureLoaded();
            return NativeMethods.Version() + " (" + NativeLibraryLoader.LoadedPath + ")";
        }
    }
}
