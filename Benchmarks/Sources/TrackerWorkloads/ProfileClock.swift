#if canImport(Glibc)
import Glibc
#endif

/// The profiles' clocks (clock_gettime(2)): `CLOCK_THREAD_CPUTIME_ID` for the CPU time of the
/// thread that runs the measured part, `CLOCK_MONOTONIC` for the wall clock.
public enum ProfileClock {
    public static func nanoseconds(_ clock: clockid_t) -> UInt64 {
        var time = timespec()
        clock_gettime(clock, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    public static func seconds(_ clock: clockid_t) -> Double {
        Double(nanoseconds(clock)) / 1e9
    }
}
