import Foundation
import PackagePlugin

/// Generates GeneratedVersion.swift for the target it is applied to, before every build, from
/// the VERSION file at the package's root and the commit git reports for the source tree (none
/// outside a git checkout). A prebuild command, so `swift build` alone, debug or release, gets
/// it too; scripts/build-version.sh rewrites the file only when its text changes, so an
/// unchanged version costs no recompilation.
@main
struct BuildVersionPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        return [
            .prebuildCommand(
                displayName: "seqwall version from VERSION and git",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [
                    package.appending(path: "scripts/build-version.sh").path,
                    package.path,
                    output.appending(path: "GeneratedVersion.swift").path,
                ],
                outputFilesDirectory: output
            )
        ]
    }
}
