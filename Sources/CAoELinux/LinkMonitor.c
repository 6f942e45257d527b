// See CAoELinux.h: rtnetlink link events (rtnetlink(7), netlink(7)), as a kernel driver gets
// netdevice notifications: an interface deleted, re-created, its MTU or state changed.
#define _GNU_SOURCE
#include "CAoELinux.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int aoel_link_monitor_open(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof addr);
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = RTMGRP_LINK;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    // Room for a burst (a network manager re-creating many links at once).
    int size = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    return fd;
}

int aoel_link_monitor_read(int fd, struct aoel_link_event *events, int max, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r;
    do { r = poll(&p, 1, timeout_ms); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (r == 0) return 0;
    // Aligned for struct nlmsghdr; one datagram holds whole messages (netlink(7)).
    static __thread char buffer[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t n;
    do { n = recv(fd, buffer, sizeof buffer, 0); } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    int count = 0;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buffer; NLMSG_OK(h, (size_t)n) && count < max; h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) continue;
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) continue;
        struct ifinfomsg *ifi = NLMSG_DATA(h);
        struct aoel_link_event *e = &events[count];
        memset(e, 0, sizeof *e);
        e->deleted = h->nlmsg_type == RTM_DELLINK;
        e->ifindex = ifi->ifi_index;
        e->flags = ifi->ifi_flags;
        int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(struct ifinfomsg));
        for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
            switch (a->rta_type) {
            case IFLA_IFNAME: {
                size_t l = RTA_PAYLOAD(a) < sizeof e->name - 1 ? RTA_PAYLOAD(a) : sizeof e->name - 1;
                memcpy(e->name, RTA_DATA(a), l);
                e->name[l] = 0;
                break;
            }
            case IFLA_MTU:
                if (RTA_PAYLOAD(a) >= sizeof(unsigned)) { unsigned m; memcpy(&m, RTA_DATA(a), sizeof m); e->mtu = (int)m; }
                break;
            case IFLA_ADDRESS:
                if (RTA_PAYLOAD(a) == 6) { memcpy(e->mac, RTA_DATA(a), 6); e->has_mac = 1; }
                break;
            }
        }
        if (e->name[0]) count++;
    }
    return count;
}
