/// The version of this build: the VERSION file at the repository's root, and the git commit
/// it was built from when it was built in a git checkout (GeneratedVersion.swift, written at
/// build time by scripts/build-version.sh).
public enum BuildVersion {
    /// As in VERSION, e.g. "0.1.0".
    public static let version = GeneratedVersion.version
    /// The commit's abbreviated hash (12 digits); nil when built outside a git checkout.
    public static let commit = GeneratedVersion.commit

    /// "0.1.0 (commit 0123456789ab)", or "0.1.0" without a commit.
    public static var description: String {
        commit.map { "\(version) (commit \($0))" } ?? version
    }
}
