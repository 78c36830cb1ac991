/// The state sync's place in the daemon's start and stop (SyncService, docs/ha.md).
extension Daemon {
    /// Reads the key and binds the sync socket, before the queues: a missing, short or
    /// exposed key, or an address in use, stops the start with the reason.
    func openSync() throws(SyncKeyFile.Problem) -> SyncService? {
        guard let options = options.sync else { return nil }
        do {
            let service = try SyncService(options: options, logger: logger)
            logger.info("sync: listening on \(options.listen), peer \(options.peer)")
            return service
        } catch {
            logger.error("not starting: \(error)")
            throw error
        }
    }
}
