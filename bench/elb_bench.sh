#!/usr/bin/env bash
# Load balancer benchmark: wrk against two nginx keep-alive targets serving a
# small static file, directly and through HAProxy, nginx (as a proxy) and
# berth's load balancer, all started and configured here on 127.0.0.1, in one
# run. Prints requests/s, p99 latency, the ratios of berth to the better peer,
# and each proxy's CPU time per request.
#
#   bench/elb_bench.sh [duration_seconds] [connections]
#
# Fairness between the contenders, on a small machine with other work:
#   - the machine's other load changes by the second and is the main source of
#     run-to-run swings, so the contenders are measured in short slices,
#     ROUNDS=n times (default 6 of DURATION=4 s), every other round in reverse
#     order (so each contender is measured early and late alike); figures are
#     medians, and the berth/peer ratio is also taken round by round with its
#     spread printed;
#   - PIN=1 (the default with 2 CPUs or more) pins wrk to the last CPU and
#     the proxies and the targets to the others, so no proxy competes with the
#     load generator for a core and every proxy shares its CPUs with the same
#     targets: requests/s then tell the proxies' costs apart (with wrk beside
#     the targets instead, that one core is the limit for every contender and
#     all four measure alike). PROXY_THREADS then defaults to the proxies'
#     CPU count. PIN=0 leaves the placement to the scheduler;
#   - CPU time per request (per proxy, from /proc) moves far less with the
#     machine's other load than requests/s do; its ratio is printed too.
# Needs wrk, nginx, haproxy, taskset, Debian's python3 with boto3, and an
# optimized berthd (BERTHD, default build/berthd as scripts/build makes it).
# Everything it starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-4}"
CONNECTIONS="${2:-64}"
THREADS="${WRK_THREADS:-2}"
BERTHD="${BERTHD:-build/berthd}"
PY=/usr/bin/python3

CPUS="$(nproc)"
PIN="${PIN:-$((CPUS >= 2))}"
if ((PIN)); then
  # The last CPU drives the load (wrk); the others run the proxy under test
  # (one at a time) and the targets.
  LOAD_CPUS="$((CPUS - 1))"
  PROXY_CPUS="0"
  if ((CPUS > 2)); then PROXY_CPUS="0-$((CPUS - 2))"; fi
  PROXY_THREADS="${PROXY_THREADS:-$((CPUS - 1))}"
  ON_LOAD=(taskset -c "$LOAD_CPUS")
  ON_PROXY=(taskset -c "$PROXY_CPUS")
else
  PROXY_THREADS="${PROXY_THREADS:-2}"
  ON_LOAD=()
  ON_PROXY=()
fi

for tool in wrk nginx haproxy taskset "$BERTHD"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x "$tool" ]]; then
    echo "elb_bench: $tool is missing" >&2
    exit 2
  fi
done

WORK="$(mktemp -d /tmp/berth-elb-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -z "${BENCH_KEEP:-}" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {  # a bindable port below the ephemeral range, so no outgoing connection takes it
  "$PY" -c '
import random, socket
while True:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randint(20000, 29999)))
        print(s.getsockname()[1])
        break
    except OSError:
        pass
    finally:
        s.close()'
}

wait_http() {  # url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "elb_bench: $1 did not answer:" >&2
  curl -sS -i "$1" >&2 || true
  if [[ -f "$WORK/berthd.log" ]]; then
    tail -20 "$WORK/berthd.log" >&2
  fi
  return 1
}

# ---------------------------------------------------------------------------
# Targets: two nginx instances, one worker each, keep-alive, a small file.
mkdir -p "$WORK/www"
head -c 512 /dev/zero | tr '\0' 'b' >"$WORK/www/index.html"
TARGET_PORTS=()
for i in 1 2; do
  port="$(free_port)"
  TARGET_PORTS+=("$port")
  dir="$WORK/target$i"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    root $WORK/www;
    location / { }
  }
}
EOF
  "${ON_PROXY[@]}" nginx -c "$dir/nginx.conf" -p "$dir" &
  PIDS+=($!)
done
for port in "${TARGET_PORTS[@]}"; do
  wait_http "http://127.0.0.1:$port/index.html"
done

# ---------------------------------------------------------------------------
# HAProxy.
HAPROXY_PORT="$(free_port)"
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread $PROXY_THREADS
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  timeout connect 10s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend be
backend be
  balance roundrobin
  server t1 127.0.0.1:${TARGET_PORTS[0]} check inter 5s
  server t2 127.0.0.1:${TARGET_PORTS[1]} check inter 5s
EOF
"${ON_PROXY[@]}" haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
wait_http "http://127.0.0.1:$HAPROXY_PORT/index.html"

# ---------------------------------------------------------------------------
# nginx as a proxy (master and workers; CPU is summed over the workers).
NGINX_PORT="$(free_port)"
dir="$WORK/nginxproxy"
mkdir -p "$dir"
cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $PROXY_THREADS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream targets {
    server 127.0.0.1:${TARGET_PORTS[0]};
    server 127.0.0.1:${TARGET_PORTS[1]};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://targets;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
"${ON_PROXY[@]}" nginx -c "$dir/nginx.conf" -p "$dir" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$NGINX_PORT/index.html"

# ---------------------------------------------------------------------------
# berth: berthd with a load balancer, a target group of both targets and a
# listener, configured through the ELBv2 API.
BERTH_API_PORT="$(free_port)"
BERTH_LB_PORT="$(free_port)"
"${ON_PROXY[@]}" "$BERTHD" serve --listen "127.0.0.1:$BERTH_API_PORT" --data-dir "$WORK/berth" \
  --log-level warn --lb-threads "$PROXY_THREADS" --no-agent >"$WORK/berthd.log" 2>&1 &
BERTH_PID=$!
PIDS+=("$BERTH_PID")
wait_http "http://127.0.0.1:$BERTH_API_PORT/_berth/health"
"$PY" - "$WORK/berth" "$BERTH_API_PORT" "$BERTH_LB_PORT" "${TARGET_PORTS[@]}" <<'EOF'
import configparser, sys, time
import boto3
data_dir, api_port, lb_port, t1, t2 = sys.argv[1:]
cp = configparser.ConfigParser()
cp.read(f"{data_dir}/credentials")
elb = boto3.session.Session(
    aws_access_key_id=cp["default"]["aws_access_key_id"],
    aws_secret_access_key=cp["default"]["aws_secret_access_key"],
    region_name="us-east-1").client("elbv2", endpoint_url=f"http://127.0.0.1:{api_port}")
lb = elb.create_load_balancer(Name="bench", Subnets=["subnet-a", "subnet-b"])["LoadBalancers"][0]
tg = elb.create_target_group(Name="bench", Protocol="HTTP", Port=80, TargetType="ip",
                             HealthCheckPath="/index.html", HealthCheckIntervalSeconds=5,
                             HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2)
tg = tg["TargetGroups"][0]["TargetGroupArn"]
elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": "127.0.0.1", "Port": int(t1)},
                                                 {"Id": "127.0.0.1", "Port": int(t2)}])
elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=int(lb_port),
                    DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
deadline = time.time() + 30
while time.time() < deadline:
    states = [d["TargetHealth"]["State"]
              for d in elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]]
    if states == ["healthy", "healthy"]:
        break
    time.sleep(0.5)
else:
    sys.exit(f"targets did not become healthy: {states}")
EOF
wait_http "http://127.0.0.1:$BERTH_LB_PORT/index.html"

# ---------------------------------------------------------------------------
# Measurements.
cpu_ticks() {  # pids... -> utime+stime in clock ticks, summed over the processes' threads
  local total=0
  for pid in "$@"; do
    # Fields 14 and 15 of /proc/<pid>/stat, after the parenthesized command.
    local fields
    fields="$(sed -e 's/^.*) //' "/proc/$pid/stat")"
    total=$((total + $(echo "$fields" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

children() {  # pid -> its child pids
  pgrep -P "$1" | tr '\n' ' '
}

declare -A RPS P99 CPU  # per contender: one value per round, space-separated
run() {  # name url [pids whose CPU counts]
  local name="$1" url="$2"
  shift 2
  local pids=("$@")
  local warm=1
  if [[ -z "${RPS[$name]:-}" ]]; then warm=2; fi  # longer before the first measurement
  "${ON_LOAD[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${warm}s" "$url" >/dev/null 2>&1
  local before=0 after=0
  if ((${#pids[@]})); then before="$(cpu_ticks "${pids[@]}")"; fi
  local out
  out="$("${ON_LOAD[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")"
  if ((${#pids[@]})); then after="$(cpu_ticks "${pids[@]}")"; fi
  local requests errors
  requests="$(echo "$out" | awk '/requests in/ {print $1}')"
  errors="$(echo "$out" | awk '/Non-2xx|Socket errors/' | tr '\n' ' ')"
  if [[ -n "$errors" ]]; then
    echo "  $name: $errors" >&2
  fi
  RPS[$name]+="$(echo "$out" | awk '/^Requests\/sec:/ {print $2}') "
  P99[$name]+="$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')") "
  if ((${#pids[@]})) && ((requests > 0)); then
    CPU[$name]+="$(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$requests" \
      'BEGIN {printf "%.1f", t * us / n}') "
  fi
}

to_ms() {  # wrk latency ("812.00us", "1.20ms", "2.01s") -> milliseconds
  echo "$1" | awk '/us$/ {sub("us",""); print $1/1000; next}
                   /ms$/ {sub("ms",""); print $1; next}
                   /s$/  {sub("s","");  print $1*1000; next}'
}

median() {  # values... -> their median ("-" for none)
  if (($# == 0)); then
    echo "-"
    return
  fi
  printf "%s\n" "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

TICK_US=$((1000000 / $(getconf CLK_TCK)))
NGINX_WORKERS=($(children "$NGINX_PID"))
ROUNDS="${ROUNDS:-6}"

measure() {  # contender
  case "$1" in
    direct) run direct "http://127.0.0.1:${TARGET_PORTS[0]}/index.html" ;;
    haproxy) run haproxy "http://127.0.0.1:$HAPROXY_PORT/index.html" "$HAPROXY_PID" ;;
    nginx) run nginx "http://127.0.0.1:$NGINX_PORT/index.html" "${NGINX_WORKERS[@]}" ;;
    berth) run berth "http://127.0.0.1:$BERTH_LB_PORT/index.html" "$BERTH_PID" ;;
  esac
}

pinning="not pinned"
if ((PIN)); then
  pinning="proxies and targets on CPU $PROXY_CPUS, wrk on CPU $LOAD_CPUS"
fi
echo "elb_bench: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, ${PROXY_THREADS} proxy threads," \
  "2 nginx targets, 512-byte file, $CPUS CPUs ($pinning), $ROUNDS round(s)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 0; round < ROUNDS; round++)); do
  if ((round % 2 == 0)); then
    order=(direct haproxy nginx berth)
  else
    order=(berth nginx haproxy direct)
  fi
  for name in "${order[@]}"; do
    measure "$name"
  done
done

declare -A MRPS MP99
printf "\n%-10s %12s %10s %16s\n" "target" "requests/s" "p99 (ms)" "CPU us/request"
for name in direct haproxy nginx berth; do
  MRPS[$name]="$(median ${RPS[$name]})"
  MP99[$name]="$(median ${P99[$name]})"
  printf "%-10s %12s %10s %16s\n" "$name" "${MRPS[$name]}" "${MP99[$name]}" \
    "$(median ${CPU[$name]:-})"
done

best=haproxy
if awk -v a="${MRPS[nginx]}" -v b="${MRPS[haproxy]}" 'BEGIN {exit !(a > b)}'; then
  best=nginx
fi
# The ratio round by round: berth against the peer measured in the same round.
read -r -a berth_rounds <<<"${RPS[berth]}"
read -r -a peer_rounds <<<"${RPS[$best]}"
ROUND_RATIOS=()
for ((round = 0; round < ROUNDS; round++)); do
  ROUND_RATIOS+=("$(awk -v b="${berth_rounds[$round]}" -v p="${peer_rounds[$round]}" \
    'BEGIN {printf "%.2f", b / p}')")
done
if ((ROUNDS > 1)); then
  echo "(medians of $ROUNDS rounds; requests/s per round: berth ${RPS[berth]}, $best ${RPS[$best]})"
fi

awk -v b="${MRPS[berth]}" -v p="${MRPS[$best]}" -v bp="${MP99[berth]}" -v pp="${MP99[$best]}" \
  -v peer="$best" -v d="${MRPS[direct]}" -v rr="$(median "${ROUND_RATIOS[@]}")" \
  -v lo="$(printf "%s\n" "${ROUND_RATIOS[@]}" | sort -g | head -1)" \
  -v hi="$(printf "%s\n" "${ROUND_RATIOS[@]}" | sort -g | tail -1)" \
  -v bc="$(median ${CPU[berth]:-})" -v pc="$(median ${CPU[$best]:-})" 'BEGIN {
    printf "\nberth / %s requests/s: %.2fx (goal >= 1.00x)\n", peer, b / p
    printf "  round by round: median %.2fx, from %.2fx to %.2fx\n", rr, lo, hi
    printf "berth / %s p99:        %.2fx (goal <= 1.20x)\n", peer, bp / pp
    if (bc > 0 && pc > 0) {
      printf "berth / %s CPU per request: %.2fx (lower is better)\n", peer, bc / pc
    }
    printf "berth / direct requests/s: %.2fx\n", b / d
  }'
echo "load at the end $(cut -d' ' -f1-3 /proc/loadavg); the figures move with it"

