#!/bin/sh
DEV=eth0
case "$1" in
start)
    tc qdisc replace dev $DEV root handle 1: htb default 10
    tc class replace dev $DEV parent 1: classid 1:10 htb rate 3mbit ceil 3mbit
    ;;
stop)
    tc qdisc del dev $DEV root 2>/dev/null || true
    ;;
esac
