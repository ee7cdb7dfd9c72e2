// The one place with operating-system-specific code: which file is the native library on this platform,
// where it is, and how it is loaded and its exports found.
//
// Layout (PSWSMan style):  <module>/runtimes/<rid>/native/<file>
//   rid  = win-x64 | win-x86 | win-arm64 | linux-x64 | linux-arm64 | linux-musl-x64 | osx-x64 | osx-arm64 ...
//   file = remoteitp2p.dll (Windows) | libremoteitp2p.so (Linux) | libremoteitp2p.dylib (macOS)
// Override for tests and development: REMOTEITP2P_NATIVE_LIB = the full path of the library file.
//
// Loading: on .NET (PowerShell 7) through System.Runtime.InteropServices.NativeLibrary, found by reflection
// because this assembly targets netstandard2.0; on .NET Framework (Windows PowerShell 5.1, Windows only)
// through kernel32's LoadLibraryExW / GetProcAddress.

using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;

namespace RemoteItP2P.Native
{
    /// <summary>Finds and loads the native library; resolves its exports.</summary>
    public static class NativeLibraryLoader
    {
        /// <summary>The environment variable that overrides the library's path (full path of the file).</summary>
        public const string OverrideVariable = "REMOTEITP2P_NATIVE_LIB";

        /// <summary>The runtime identifier chosen from the OS and the process architecture, e.g. linux-x64.</summary>
        public static string RuntimeIdentifier
        {
            get
            {
                string arch;
                switch (RuntimeInformation.ProcessArchitecture)
                {
                    case Architecture.X64: arch = "x64"; break;
                    case Architecture.X86: arch = "x86"; break;
                    case Architecture.Arm64: arch = "arm64"; break;
                    case Architecture.Arm: arch = "arm"; break;
                    default: arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(); break;
                }
                if (IsWindows) return "win-" + arch;
                if (IsMacOS) return "osx-" + arch;
                return (IsMusl ? "linux-musl-" : "linux-") + arch;
            }
        }

        /// <summary>The library's file name on this OS.</summary>
        public static string LibraryFileName
        {
            get
            {
                if (IsWindows) return "remoteitp2p.dll";
                if (IsMacOS) return "libremoteitp2p.dylib";
                return "libremoteitp2p.so";
            }
        }

        internal static bool IsWindows => RuntimeInformation.IsOSPlatform(OSPlatform.Windows);
        internal static bool IsMacOS => RuntimeInformation.IsOSPlatform(OSPlatform.OSX);

        private static bool IsMusl
        {
            get
            {
                try { return File.Exists("/etc/alpine-release"); }
                catch { return false; }
            }
        }

        /// <summary>The path the library was loaded from (null until loaded).</summary>
        public static string? LoadedPath { get; private set; }

        /// <summary>Candidate paths, in order, for this process.</summary>
        public static IList<string> CandidatePaths()
        {
            var result = new List<string>();
            string env = Environment.GetEnvironmentVariable(OverrideVariable);
            if (!string.IsNullOrEmpty(env))
            {
                result.Add(env);
                return result; // an explicit override is the only candidate: a test must not silently use another build
            }
            string asmDir = Path.GetDirectoryName(typeof(NativeLibraryLoader).Assembly.Location) ?? ".";
            string rel = Path.Combine("runtimes", RuntimeIdentifier, "native", LibraryFileName);
            // The module keeps runtimes/ beside the manifest and the assembly; a layout with the assembly in
            // bin/ (runtimes/ one level up) is accepted too.
            result.Add(Path.Combine(asmDir, rel));
            result.Add(Path.Combine(Path.GetDirectoryName(asmDir) ?? asmDir, rel));
            result.Add(Path.Combine(asmDir, LibraryFileName));
            return result;
        }

        /// <summary>Loads the library from the first candidate that exists; throws P2PNativeLibraryException.</summary>
        internal static IntPtr Load()
        {
            var tried = new List<string>();
            foreach (string path in CandidatePaths())
            {
                string full;
                try { full = Path.GetFullPath(path); }
                catch { tried.Add(path + " (invalid path)"); continue; }
                if (!File.Exists(full))
                {
                    tried.Add(full + " (not found)");
                    continue;
                }
                try
                {
                    IntPtr h = LoadFile(full);
                    LoadedPath = full;
                    return h;
                }
                catch (Exception e)
                {
                    tried.Add(full + " (" + e.Message + ")");
                }
            }
            throw new P2PNativeLibraryException(
                "The RemoteItP2P native library for " + RuntimeIdentifier + " could not be loaded. Tried: " +
                string.Join("; ", tried) + ". Set " + OverrideVariable + " to the full path of " + LibraryFileName +
                " or reinstall the module.");
        }

        // ---- .NET (Core): System.Runtime.InteropServices.NativeLibrary, by reflection --------------------------

        private static readonly Type NativeLibraryType =
            Type.GetType("System.Runtime.InteropServices.NativeLibrary", throwOnError: false);

        private static IntPtr LoadFile(string full)
        {
            if (NativeLibraryType != null)
            {
                MethodInfo load = NativeLibraryType.GetMethod("Load", new[] { typeof(string) });
                try { return (IntPtr)load.Invoke(null, new object[] { full }); }
                catch (TargetInvocationException e) when (e.InnerException != null) { throw e.InnerException; }
            }
            if (!IsWindows)
                throw new PlatformNotSupportedException("this runtime has no NativeLibrary and is not Windows");
            IntPtr h = LoadLibraryExW(full, IntPtr.Zero, LOAD_WITH_ALTERED_SEARCH_PATH);
            if (h == IntPtr.Zero)
                throw new DllNotFoundException("LoadLibraryEx failed with Win32 error " + Marshal.GetLastWin32Error());
            return h;
        }

        /// <summary>The address of an export; IntPtr.Zero when the library lacks it.</summary>
        internal static IntPtr GetExport(IntPtr library, string name)
        {
            if (NativeLibraryType != null)
            {
                MethodInfo tryGet = NativeLibraryType.GetMethod(
                    "TryGetExport", new[] { typeof(IntPtr), typeof(string), typeof(IntPtr).MakeByRefType() });
                var args = new object[] { library, name, IntPtr.Zero };
                bool ok = (bool)tryGet.Invoke(null, args);
                return ok ? (IntPtr)args[2] : IntPtr.Zero;
            }
            return GetProcAddress(library, name);
        }

        // ---- .NET Framework on Windows ----------------------------------------------------------------------

        private const uint LOAD_WITH_ALTERED_SEARCH_PATH = 0x00000008;

        [DllImport("kernel32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
        private static extern IntPtr LoadLibraryExW(string lpLibFileName, IntPtr hFile, uint dwFlags);

        [DllImport("kernel32.dll", CharSet = CharSet.Ansi, SetLastError = true, BestFitMapping = false)]
        private static extern IntPtr GetProcAddress(IntPtr hModule, string procName);
    }
}
