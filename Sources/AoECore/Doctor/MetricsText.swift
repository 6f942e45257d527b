/// One sample of the Prometheus text exposition format: `name{label="value",…} 1.5`.
public struct MetricSample: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    public init(name: String, labels: [String: String], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }
}

/// Reads the text format back (what `aoefs doctor` does with a mount's `sys/metrics`). Never
/// traps: a line it cannot read is skipped.
public enum MetricsText {
    public static func parse(_ text: String) -> [MetricSample] {
        text.split(separator: "\n").compactMap { parseLine(Substring($0)) }
    }

    static func parseLine(_ line: Substring) -> MetricSample? {
        if line.hasPrefix("#") || line.isEmpty { return nil }
        var name = ""
        var labels: [String: String] = [:]
        var i = line.startIndex
        while i < line.endIndex, line[i] != "{", line[i] != " " {
            name.append(line[i])
            i = line.index(after: i)
        }
        guard !name.isEmpty, i < line.endIndex else { return nil }
        if line[i] == "{" {
            i = line.index(after: i)
            while i < line.endIndex, line[i] != "}" {
                var key = ""
                while i < line.endIndex, line[i] != "=" {
                    if line[i] != "," && line[i] != " " { key.append(line[i]) }
                    i = line.index(after: i)
                }
                guard i < line.endIndex else { return nil }
                i = line.index(after: i)  // '='
                guard i < line.endIndex, line[i] == "\"" else { return nil }
                i = line.index(after: i)
                var value = ""
                while i < line.endIndex, line[i] != "\"" {
                    if line[i] == "\\" {
                        i = line.index(after: i)
                        guard i < line.endIndex else { return nil }
                        value.append(line[i] == "n" ? "\n" : line[i])
                    } else {
                        value.append(line[i])
                    }
                    i = line.index(after: i)
                }
                guard i < line.endIndex else { return nil }
                i = line.index(after: i)  // closing quote
                labels[key] = value
            }
            guard i < line.endIndex else { return nil }
            i = line.index(after: i)  // '}'
        }
        let rest = line[i...].split(separator: " ")
        guard let first = rest.first else { return nil }
        let v: Double?
        switch first {
        case "+Inf": v = .infinity
        case "-Inf": v = -.infinity
        case "NaN": v = .nan
        default: v = Double(first)
        }
        guard let value = v else { return nil }
        return MetricSample(name: name, labels: labels, value: value)
    }
}
