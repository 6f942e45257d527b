import AoECore
import AoEFUSE
import Testing

@Suite("When the supervisor starts its daemon again")
struct RestartPolicyTests {
    func at(_ seconds: Double) -> Instant { Instant(nanoseconds: UInt64(seconds * 1e9)) }

    @Test(
        "deaths, in time, and what follows each",
        arguments: [
            // (death times in seconds, the decisions expected)
            ([1.0], [RestartPolicy.Decision.restart(after: .zero)]),
            ([1, 2], [.restart(after: .zero), .restart(after: .milliseconds(250))]),
            (
                [1, 2, 3, 4],
                [
                    .restart(after: .zero), .restart(after: .milliseconds(250)), .restart(after: .milliseconds(500)),
                    .restart(after: .seconds(1)),
                ]
            ),
            // Five deaths in a minute: a crash loop.
            (
                [1, 2, 3, 4, 5],
                [
                    .restart(after: .zero), .restart(after: .milliseconds(250)), .restart(after: .milliseconds(500)),
                    .restart(after: .seconds(1)), .giveUp(deaths: 5, within: .seconds(60)),
                ]
            ),
            // Deaths a minute apart never add up.
            ([1, 62, 123, 184, 245, 306], Array(repeating: .restart(after: .zero), count: 6)),
            // The window slides: by 61.5 s the deaths at 0 and 1 s have fallen out of it.
            (
                [0, 1, 30, 61.5, 62],
                [
                    .restart(after: .zero), .restart(after: .milliseconds(250)),
                    .restart(after: .milliseconds(500)), .restart(after: .milliseconds(250)),
                    .restart(after: .milliseconds(500)),
                ]
            ),
        ] as [([Double], [RestartPolicy.Decision])])
    func table(deaths: [Double], expected: [RestartPolicy.Decision]) {
        var p = RestartPolicy()
        let got = deaths.map { p.died(now: at($0)) }
        #expect(got == expected)
        #expect(p.totalDeaths == deaths.count)
    }
}
