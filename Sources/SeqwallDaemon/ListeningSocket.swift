#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension SystemCall {
    /// Binds `descriptor` (`bind` calls bind(2) with the caller's address) and listens with
    /// `backlog`. On failure the descriptor is closed and the error names `what`, e.g. "the
    /// control socket /run/seqwall/control.sock".
    static func bindAndListen(_ descriptor: Int32, _ what: String, backlog: Int32,
                              bind: () -> Int32) throws(SystemError) {
        guard bind() == 0 else {
            let error = SystemError("binding \(what)")
            close(descriptor)
            throw error
        }
        guard listen(descriptor, backlog) == 0 else {
            let error = SystemError("listening on \(what)")
            close(descriptor)
            throw error
        }
    }
}
