package Cocaine::Worker;
# The cocaine Perl worker runtime: speaks the worker protocol (docs/worker-protocol.md) for an
# app, and is the API the app sees (plugins/perl/README.md). Core modules only, Perl 5.36.
#
# Single-threaded, one call at a time (handshake concurrency 1). A handler runs as soon as its
# INVOKE arrives; reading its body (body, each_chunk) reads the socket, so the body can be
# processed as it arrives. Heartbeats go out from the main loop, from every body read, from every
# $res->write, from heartbeat(), from the app's builtin sleep and while a service request
# ($req->call, emit, storage; Cocaine/Worker/Services.pm) waits for its answer: a handler that
# computes longer than the heartbeat timeout without any of these gets its worker killed.
use strict;
use warnings;
use Exporter 'import';
use Time::HiRes ();

our @EXPORT = qw(handler);
our @EXPORT_OK = qw(heartbeat);
our $VERSION = '1.0';

use constant {
    HANDSHAKE => 1, HEARTBEAT => 2, TERMINATE => 3, INVOKE => 4, CHUNK => 5, END_ => 6, ERROR => 7,
    SERVICE => 8, LOG => 9,
    WORKER_CHANNEL_BASE => 0x80000000,
    MAX_PAYLOAD => 64 * 1024 * 1024,
    JOIN_LIMIT => 256 * 1024,
};

my %HANDLERS;
my ($SOCK, $RBUF, $HEARTBEAT_S, $DISOWN_S, $LAST_RECEIVED, $NEXT_BEAT) = (undef, '', 1, 10, 0, 0);
# The disown clock runs once the engine has spoken: it sends nothing before it accepted the
# handshake, and a slow engine that has not read it yet is not a dead one.
my $SPOKEN = 0;
my $CURRENT;     # the request being handled, if any
my @DEFERRED;    # frames for other channels that arrived while a handler ran
# The protocol version spoken: 2 (services, LOG frames) when the engine speaks it, else 1.
our $PROTOCOL = 1;

# handler NAME => CODE: registers the handler of an event.
sub handler {
    my ($name, $code) = @_;
    die "handler: usage: handler NAME => sub { ... }\n" unless defined $name && length $name && ref $code eq 'CODE';
    $HANDLERS{$name} = $code;
    return;
}

sub handlers { return {%HANDLERS} }

sub _log { print STDERR "cocaine: $_[0]\n" }

# Exits at once (also from inside a handler: `exit` is not caught by eval), taking the worker's
# process group down first. STDOUT and STDERR are unbuffered, so nothing the app printed is lost.
sub _leave { _kill_own_group(); CORE::exit($_[0]) }

# SIGKILLs every other process of the worker's process group (what handlers started), so none
# outlives the worker. Only when the worker leads its group, as every isolate starts it.
sub _kill_own_group {
    return unless getpgrp() == $$;
    for (1 .. 5) {  # a member may fork while we look: repeat until a pass finds nobody
        opendir(my $proc, '/proc') or return;
        my @members;
        for my $pid (grep { /^\d+$/ && $_ != $$ } readdir $proc) {
            open(my $stat, '<', "/proc/$pid/stat") or next;
            my $line = <$stat> // next;
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            my @fields = split / /, substr($line, rindex($line, ')') + 2);
            push @members, $pid if defined $fields[2] && $fields[2] == $$;
        }
        closedir $proc;
        return unless @members && kill('KILL', @members);
    }
}

sub _env_seconds {
    my ($name, $default) = @_;
    my $value = $ENV{$name} // $default;
    if ($value !~ /^\d+$/) { _log("$name is not a number of milliseconds: '$value'"); _leave(1) }
    return ($value || 1) / 1000;
}

sub run {
    my $endpoint = $ENV{COCAINE_ENDPOINT};
    unless ($endpoint) { _log('COCAINE_ENDPOINT is not set: this program is started by the cocaine engine'); _leave(1) }
    $HEARTBEAT_S = _env_seconds('COCAINE_HEARTBEAT_MS', 1000);
    $DISOWN_S = _env_seconds('COCAINE_DISOWN_MS', 10000);
    # COCAINE_PROTOCOL is the highest version the engine speaks; every engine serves version 1.
    my $engine_protocol = $ENV{COCAINE_PROTOCOL} // '';
    if ($engine_protocol !~ /^[1-9][0-9]*$/) { _log("COCAINE_PROTOCOL is '$engine_protocol'; this runtime speaks 2 (and 1)"); _leave(1) }
    $PROTOCOL = $engine_protocol >= 2 ? 2 : 1;
    $SIG{PIPE} = 'IGNORE';
    # The app's prints reach its logs line by line, and before a crash. (Not STDOUT->autoflush:
    # the method call loads IO::Handle, which costs more start-up time than the rest.)
    select((select(STDOUT), $| = 1)[0]);
    my ($family, $type, $address) = _unix_address($endpoint);
    socket($SOCK, $family, $type, 0) or do { _log("socket: $!"); _leave(1) };
    connect($SOCK, $address) or do { _log("cannot connect to $endpoint: $!"); _leave(1) };
    binmode $SOCK;

    _load_app($ENV{COCAINE_ENTRYPOINT} // 'app.pl');
    _send(HANDSHAKE, 0, sprintf('{"protocol":%d,"worker":%s,"pid":%d,"runtime":%s,"concurrency":1,"events":[%s]}',
        $PROTOCOL, _json_string($ENV{COCAINE_WORKER_ID} // ''), $$, _json_string(sprintf('perl %vd', $^V)),
        join(',', map { _json_string($_) } sort keys %HANDLERS)));
    $LAST_RECEIVED = Time::HiRes::time();
    $NEXT_BEAT = $LAST_RECEIVED + $HEARTBEAT_S;
    for (;;) {
        while (my $frame = shift @DEFERRED) { _dispatch(@$frame) }
        _pump(_until_due());
    }
}

# On Linux without the Socket module: loading it takes longer than the rest of the runtime
# (~8 ms of a ~25 ms start). AF_UNIX and SOCK_STREAM are 1 there; sockaddr_un is a native u16
# family then the NUL-terminated path.
sub _unix_address {
    my ($path) = @_;
    return (1, 1, pack('S Z*', 1, $path)) if $^O eq 'linux';
    require Socket;
    return (Socket::AF_UNIX(), Socket::SOCK_STREAM(), Socket::pack_sockaddr_un($path));
}

sub _load_app {
    my ($entrypoint) = @_;
    my $path = $entrypoint =~ m{^/} ? $entrypoint : "./$entrypoint";
    (my $dir = $path) =~ s{/[^/]*$}{};
    unshift @INC, $dir unless grep { $_ eq $dir } @INC;
    # `sleep` in the app's code (compiled below) keeps the worker heartbeating during a handler.
    { no warnings 'once'; *CORE::GLOBAL::sleep = \&_sleep unless defined &CORE::GLOBAL::sleep; }
    my $ok = eval {
        die "no such file: $path\n" unless -f $path;
        die "cannot read $path\n" unless -r _;
        package main;
        do $path;
        die $@ if $@;
        1;
    };
    unless ($ok) {
        my $error = $@;
        $error .= "\n" unless $error =~ /\n\z/;
        _log("cannot load the entrypoint $entrypoint");
        print STDERR $error;
        _leave(1);
    }
    unless (%HANDLERS) {
        _log("the entrypoint $entrypoint registers no handlers (use Cocaine::Worker; handler NAME => sub { ... })");
        _leave(1);
    }
}

# JSON::PP for the app's JSON (json(), hash results), loaded on first use: it takes longer to
# load than the rest of the runtime. The protocol's own payloads use the small codec below.
my $JSON;
sub _json {
    return $JSON //= do { require JSON::PP; JSON::PP->new->utf8->canonical };
}

sub _json_string {
    my ($text) = @_;
    $text =~ s/(["\\])/\\$1/g;
    $text =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
    if (utf8::is_utf8($text)) { utf8::encode($text) }
    elsif ($text =~ /[\x80-\xff]/ && !utf8::decode(my $copy = $text)) {
        utf8::upgrade($text);  # bytes that are not UTF-8: taken as Latin-1, so the JSON stays valid
        utf8::encode($text);
    }
    return qq("$text");
}

my %UNESCAPE = ('"' => '"', '\\' => '\\', '/' => '/', b => "\b", f => "\f", n => "\n", r => "\r", t => "\t");

# Decodes UTF-8 JSON text (objects, arrays, strings, numbers, true/false/null); dies if malformed.
sub _json_decode {
    local $_ = $_[0];
    utf8::decode($_) or die "malformed UTF-8\n";
    my $value = _json_value();
    /\G\s*\z/gc or die "trailing text in JSON\n";
    return $value;
}

sub _json_value {
    /\G\s*/gc;
    if (/\G\{\s*/gc) {
        my %object;
        return \%object if /\G\}/gc;
        do {
            /\G\s*"/gc or die "expected a JSON key\n";
            my $key = _json_rest_of_string();
            /\G\s*:/gc or die "expected ':' in JSON\n";
            $object{$key} = _json_value();
            /\G\s*/gc;
        } while (/\G,/gc);
        /\G\}/gc or die "expected '}' in JSON\n";
        return \%object;
    }
    if (/\G\[\s*/gc) {
        my @array;
        return \@array if /\G\]/gc;
        do { push @array, _json_value(); /\G\s*/gc } while (/\G,/gc);
        /\G\]/gc or die "expected ']' in JSON\n";
        return \@array;
    }
    return _json_rest_of_string() if /\G"/gc;
    return $1 + 0 if /\G(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)/gc;
    return 1 if /\Gtrue/gc;
    return 0 if /\Gfalse/gc;
    return undef if /\Gnull/gc;
    die "unexpected text in JSON\n";
}

sub _json_rest_of_string {
    my $string = '';
    for (;;) {
        if (/\G([^"\\\x00-\x1f]+)/gc) { $string .= $1 }
        elsif (/\G"/gc) { return $string }
        elsif (/\G\\u([0-9a-fA-F]{4})/gc) {
            my $code = hex $1;
            if ($code >= 0xD800 && $code <= 0xDBFF && /\G\\u([dD][c-fC-F][0-9a-fA-F]{2})/gc) {
                $code = 0x10000 + (($code - 0xD800) << 10) + (hex($1) - 0xDC00);
            }
            $string .= chr $code;
        }
        elsif (/\G\\(["\\\/bfnrt])/gc) { $string .= $UNESCAPE{$1} }
        else { die "malformed JSON string\n" }
    }
}

# Seconds until the next heartbeat or the disown deadline, whichever is first.
sub _until_due {
    my $now = Time::HiRes::time();
    my $due = !$SPOKEN || $NEXT_BEAT < $LAST_RECEIVED + $DISOWN_S ? $NEXT_BEAT : $LAST_RECEIVED + $DISOWN_S;
    my $wait = $due - $now;
    return $wait > 0.001 ? $wait : 0.001;
}

# Sends a heartbeat when one is due, and exits when the engine has been silent too long.
sub _tick {
    my $now = Time::HiRes::time();
    if ($SPOKEN && $now - $LAST_RECEIVED >= $DISOWN_S) {
        _log(sprintf('nothing from the engine for %d ms: exiting', $DISOWN_S * 1000 + 0.5));
        _leave(2);
    }
    if ($now >= $NEXT_BEAT) {
        _send(HEARTBEAT, 0, '');
        $NEXT_BEAT = $now + $HEARTBEAT_S;
    }
}

# The app's `sleep N` (CORE::GLOBAL::sleep): inside a handler it sleeps the same whole seconds
# but reads the engine's frames and heartbeats meanwhile, so a nap longer than the heartbeat
# timeout does not get the worker killed. Outside a handler (or `sleep` forever) it is CORE's.
sub _sleep (;$) {
    return @_ ? CORE::sleep($_[0]) : CORE::sleep() unless $CURRENT && @_;
    my $start = Time::HiRes::time();
    my $until = $start + int($_[0]);
    for (;;) {
        my $left = $until - Time::HiRes::time();
        last if $left <= 0;
        my $wait = _until_due();
        _pump($left < $wait ? $left : $wait);
    }
    return int(Time::HiRes::time() - $start + 0.5);
}

# heartbeat(): for handlers that compute for long without reading or writing. Cheap to call
# often: it reads what the engine sent (a cancel is noticed) and heartbeats only when due.
sub heartbeat {
    _pump(0);
    return;
}

# Waits up to $timeout seconds for data, reads what is there, handles the whole frames.
sub _pump {
    my ($timeout) = @_;
    my $bits = '';
    vec($bits, fileno($SOCK), 1) = 1;
    my $ready = select(my $readable = $bits, undef, undef, $timeout);
    if ($ready > 0) {
        my $read = sysread($SOCK, $RBUF, 1024 * 1024, length $RBUF);
        if (!defined $read) {
            return if $!{EINTR} || $!{EAGAIN};
            _leave(0);
        }
        _leave(0) if $read == 0;  # the engine closed the socket
        $LAST_RECEIVED = Time::HiRes::time();
        $SPOKEN = 1;
        while (length($RBUF) >= 9) {
            my ($type, $channel, $length) = unpack('C N N', $RBUF);
            if ($length > MAX_PAYLOAD) {
                _log("protocol error: a frame of $length bytes exceeds the limit of " . MAX_PAYLOAD);
                _leave(1);
            }
            last if length($RBUF) < 9 + $length;
            my $payload = substr($RBUF, 9, $length);
            substr($RBUF, 0, 9 + $length, '');
            _route($type, $channel, $payload);
        }
    }
    _tick();
}

sub _route {
    my ($type, $channel, $payload) = @_;
    if ($channel == 0) {
        _leave(0) if $type == TERMINATE;
        return;  # HEARTBEAT answers (already counted as a sign of life), unknown control frames
    }
    if ($channel >= WORKER_CHANNEL_BASE) {  # the answer to a handler's service request
        Cocaine::Worker::Services::route($type, $channel, $payload);
        return;
    }
    if ($CURRENT && $channel == $CURRENT->{channel}) {
        if ($type == CHUNK) { push @{ $CURRENT->{pending} }, $payload }
        elsif ($type == END_) { $CURRENT->{ended} = 1 }
        elsif ($type == ERROR) {
            my $code = eval { _json_decode($payload)->{code} } // 'cancelled';
            $CURRENT->{cancelled} = $code;
        }
        return;
    }
    # Calls start from the main loop, never inside a read (which may itself run in a handler).
    push @DEFERRED, [$type, $channel, $payload];
}

sub _dispatch {
    my ($type, $channel, $payload) = @_;
    return unless $type == INVOKE;  # anything else is for a finished channel: dropped
    my $spec = eval { _json_decode($payload) };
    unless (ref $spec eq 'HASH' && defined $spec->{event}) {
        _log("protocol error: malformed INVOKE on channel $channel");
        _leave(1);
    }
    my $code = $HANDLERS{ $spec->{event} };
    unless ($code) {
        _send_error($channel, 'not_found', "no handler for event '$spec->{event}'");
        return;
    }
    my $req = bless {
        channel => $channel, event => $spec->{event}, headers => $spec->{headers} || {},
        deadline => $spec->{deadline} || 0, pending => [], ended => 0, cancelled => undef,
    }, 'Cocaine::Request';
    my $res = bless { channel => $channel, req => $req, wrote => 0 }, 'Cocaine::Response';
    $CURRENT = $req;
    # This call's frames that arrived with its INVOKE or while the previous call ran.
    my @mine = grep { $_->[1] == $channel } @DEFERRED;
    if (@mine) {
        @DEFERRED = grep { $_->[1] != $channel } @DEFERRED;
        _route(@$_) for @mine;
    }
    if ($req->{cancelled}) {  # cancelled before it started: never run
        $CURRENT = undef;
        return;
    }
    my $ok = eval {
        my $result = $code->($req, $res);
        _deliver($res, $result) unless $res->{wrote} || (ref $result && $result == $res);
        1;
    };
    my $error = $@;
    $CURRENT = undef;
    return if $req->{cancelled};
    unless ($ok) {
        $error = "$error";
        chomp $error;
        _send_error($channel, 'handler', $error);
        return;
    }
    _send(END_, $channel, '');
}

sub _deliver {
    my ($res, $result) = @_;
    return unless defined $result;
    my $kind = ref $result;
    if ($kind eq '') { $res->write($result) if length $result }
    elsif ($kind eq 'ARRAY') { $res->write($_) for @$result }
    elsif ($kind eq 'CODE') {
        while (defined(my $chunk = $result->())) { $res->write($chunk) }
    }
    elsif ($kind eq 'HASH') { $res->write(_json()->encode($result)) }
    else { die "a handler returns a string, an array ref of chunks, a code ref iterator or a hash ref (JSON), not a $kind ref\n" }
}

sub _send_error {
    my ($channel, $code, $message) = @_;
    _send(ERROR, $channel, sprintf('{"code":%s,"message":%s}', _json_string($code), _json_string($message)));
}

sub _send {
    my ($type, $channel, $payload) = @_;
    my $length = length $payload;
    if ($length <= JOIN_LIMIT) {
        _write_all(pack('C N N', $type, $channel, $length) . $payload);
    } else {
        _write_all(pack('C N N', $type, $channel, $length));
        _write_all($payload);
    }
}

sub _write_all {
    my $offset = 0;
    my $length = length $_[0];
    while ($offset < $length) {
        my $written = syswrite($SOCK, $_[0], $length - $offset, $offset);
        unless (defined $written) {
            next if $!{EINTR} || $!{EAGAIN};
            _leave(0);  # the engine went away
        }
        $offset += $written;
    }
}

# The request and response objects: Cocaine::Request, Cocaine::Response, Cocaine::Cancelled.
require Cocaine::Worker::Request;
# The handlers' services (protocol version 2): $req->call/emit/storage/log, Cocaine::ServiceError.
require Cocaine::Worker::Services;

1;
