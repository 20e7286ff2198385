// What the guest's commands share with the program that runs them: sovnet's
// version, and the program's top command (`sovnet`, `sovnet-guest`), whose
// name usage messages begin with.
import ArgumentParser

/// sovnet's version, the same in every program it builds.
public enum SovnetVersion {
    public static let string = "0.1.0"
}

/// The top command of the program running, set once at start by its `main`.
public enum CommandRoot {
    nonisolated(unsafe) public static var current: ParsableCommand.Type = ForwardCommand.self
}
