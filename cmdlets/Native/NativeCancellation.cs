// A cancellation token of the native library (p2p_cancel_new / p2p_cancel_fire / p2p_cancel_free), tied to
// a cmdlet's CancellationToken: StopProcessing (Ctrl+C) runs on another thread than the blocked native call,
// and firing the token ends that call at once with P2PResultCode.Cancelled.

using System;
using System.Threading;

namespace RemoteItP2P.Native
{
    /// <summary>A native cancellation token, fired when <see cref="CancellationToken"/> is cancelled. Create it
    /// with <c>using</c> around the blocking calls that take it: Dispose unregisters from the managed token and
    /// frees the native one.</summary>
    public sealed class NativeCancellation : IDisposable
    {
        private readonly object _gate = new object();
        private ulong _id;
        private CancellationTokenRegistration _registration;

        /// <summary>A new native token, fired at once if <paramref name="token"/> already is.</summary>
        public NativeCancellation(CancellationToken token)
        {
            _id = NativeMethods.CancelNew();
            // Registering after a cancel runs Fire synchronously, so a Ctrl+C that came first is not lost.
            _registration = token.Register(Fire);
        }

        /// <summary>Runs a native call with the token's id (0 once disposed: no token).</summary>
        internal int Use(Func<ulong, int> call)
        {
            ulong id;
            lock (_gate) id = _id;
            return call(id);
        }

        /// <summary>Fires the native token; never throws (runs as a CancellationToken callback).</summary>
        public void Fire()
        {
            lock (_gate)
            {
                if (_id != 0) NativeMethods.CancelFire(_id);
            }
        }

        public void Dispose()
        {
            // First the registration: its Dispose waits for a Fire running on another thread to finish.
            _registration.Dispose();
            lock (_gate)
            {
                if (_id == 0) return;
                NativeMethods.CancelFree(_id);
                _id = 0;
            }
        }
    }
}
