import AoECore
import AoEEngine
import AoEProtocol
import Foundation

/// What a write to an `etherd/` file asks for (Linux /dev/etherd). Parsing is pure, so every
/// spelling and mistake is tested without a mount; `AoEFileSystem.perform` carries it out.
enum ControlCommand: Equatable, Sendable {
    /// `discover`: "" asks every target, "10" a shelf, "10.3" one target.
    case discover(TargetAddress)
    /// `interfaces`: the allow-list ("" or nothing: every interface).
    case interfaces([String])
    /// `revalidate`: eS.L.
    case revalidate(TargetAddress)
    /// `flush`: "" the down targets no one holds open, "all" every target no one holds open, or eS.L.
    case flush(FlushScope)
    /// `disable`, `enable`: the targets matching one or more patterns (`10.3`, `e10.3`, `10`, `.3`).
    case disable([TargetPattern])
    case enable([TargetPattern])
    /// `probe`: a targeted Query Config for each pattern ("" or nothing: everyone).
    case probe([TargetPattern])

    enum FlushScope: Equatable, Sendable {
        case down, all
        case target(TargetAddress)
    }

    /// The command, or the one-line reason the text makes no sense for `file`.
    static func parse(_ file: ControlFile, _ raw: String) -> Result<ControlCommand, ControlError> {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        switch file {
        case .discover:
            if text.isEmpty { return .success(.discover(.broadcast)) }
            if let t = TargetAddress(parsing: text) { return .success(.discover(t)) }
            if let shelf = UInt16(text) {
                return .success(.discover(TargetAddress(shelf: Shelf(shelf), slot: .broadcast)))
            }
            return .failure(ControlError("«\(text)» is not a shelf (10) or shelf.slot (10.3)"))
        case .interfaces:
            return .success(.interfaces(text.split(whereSeparator: { " \t\n,".contains($0) }).map(String.init)))
        case .revalidate:
            guard let t = TargetAddress(parsing: text) else {
                return .failure(.noTarget(text, expected: "eS.L, e.g. e10.3"))
            }
            return .success(.revalidate(t))
        case .flush:
            switch text {
            case "": return .success(.flush(.down))
            case "all": return .success(.flush(.all))
            default:
                guard let t = TargetAddress(parsing: text) else {
                    return .failure(.noTarget(text, expected: "\"\", \"all\" or eS.L"))
                }
                return .success(.flush(.target(t)))
            }
        case .err:
            return .failure(ControlError("err is read-only"))
        case .disable, .enable, .probe:
            let words = text.split(whereSeparator: { " \t\n,".contains($0) })
            if words.isEmpty && file != .probe {
                return .failure(ControlError("write a target pattern: SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT"))
            }
            var patterns: [TargetPattern] = []
            for w in words {
                guard let p = TargetPattern(parsing: w) else {
                    return .failure(
                        ControlError("«\(w)» is not a target pattern (SHELF.SLOT, eSHELF.SLOT, SHELF or .SLOT)"))
                }
                patterns.append(p)
            }
            switch file {
            case .disable: return .success(.disable(patterns))
            case .enable: return .success(.enable(patterns))
            default: return .success(.probe(patterns.isEmpty ? [TargetPattern(shelf: nil, slot: nil)] : patterns))
            }
        }
    }
}

/// Why a control-file write was refused, in one line (it also goes to `etherd/err`).
struct ControlError: Error, Equatable, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }

    static func noTarget(_ text: String, expected: String) -> ControlError {
        ControlError("no target «\(text)» (write \(expected))")
    }
}

extension AoEFileSystem {
    /// Acts on a write to a control file. Returns a reason when it makes no sense.
    func perform(_ file: ControlFile, _ text: String) -> ControlError? {
        let command: ControlCommand
        switch ControlCommand.parse(file, text) {
        case .success(let c): command = c
        case .failure(let e): return e
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        switch command {
        case .discover(let t):
            engine.discover(t)
        case .interfaces(let names):
            let unknown = engine.setAllowedInterfaces(names)
            if !unknown.isEmpty { return ControlError("unknown interface \(unknown.joined(separator: ", "))") }
        case .revalidate(let t):
            guard engine.target(t) != nil else { return .noTarget(trimmed, expected: "eS.L, e.g. e10.3") }
            engine.revalidate(t)
            tables.reread(t)
            dropCache(t)  // as BLKFLSBUF and a re-read: what is cached may be stale
        case .flush(let scope):
            let all = engine.targets()
            switch scope {
            case .down:
                for t in all where t.state == .down && handles.openCount(t.address) == 0 { engine.remove(t.address) }
            case .all:
                for t in all where handles.openCount(t.address) == 0 { engine.remove(t.address) }
            case .target(let t):
                guard all.contains(where: { $0.address == t }) else {
                    return .noTarget(trimmed, expected: "\"\", \"all\" or eS.L")
                }
                engine.remove(t)
            }
        case .disable(let patterns):
            for p in patterns where engine.disable(p).isEmpty {
                return ControlError("no target matches «\(p)»; it is disabled when it appears")
            }
        case .enable(let patterns):
            for p in patterns where engine.enable(p).isEmpty { return ControlError("no target matches «\(p)»") }
        case .probe(let patterns):
            for p in patterns { engine.discover(p.queryAddress) }
        }
        return nil
    }
}
