# The services a handler asks its engine for (worker protocol version 2, docs/worker-protocol.md
# "Services"; the API is in plugins/perl/README.md): $req->call, call_each, emit, storage and
# log. Loaded by Cocaine::Worker; apps never load this file themselves.
#
# Every request is a worker channel (0x80000000 | k) and a plain blocking call: it sends SERVICE,
# the body and END, then pumps the socket (heartbeating, queueing other channels' frames for
# later) until the engine's END or ERROR. A cancel of the invocation being served sends ERROR
# cancelled on the open channel and makes the call die with the cancel code.
use strict;
use warnings;

package Cocaine::ServiceError;
# What a failed service request dies with: the engine's error code (app_not_found,
# deadline_exceeded, handler_error, revision_mismatch, ...; cancelled / deadline when the
# invocation itself was cancelled) and its message. Stringifies to "code: message".
use overload '""' => sub { "$_[0]{code}: $_[0]{message}" }, fallback => 1;

sub new {
    my ($class, $code, $message) = @_;
    return bless { code => $code, message => $message // $code }, $class;
}
sub code { $_[0]{code} }
sub message { $_[0]{message} }

package Cocaine::Worker::Services;

my %OPEN;       # worker channel => { chunks, ended, error } while a request waits for its answer
my $NEXT = 0;   # k of the last worker channel opened (never reused while the worker lives)

sub _fail { die Cocaine::ServiceError->new('invalid_argument', $_[0]) }

# A frame the engine sent on a worker channel. Frames for a finished channel are dropped.
sub route {
    my ($type, $channel, $payload) = @_;
    my $state = $OPEN{$channel} or return;
    return if $state->{ended} || $state->{error};
    if ($type == Cocaine::Worker::CHUNK) { push @{ $state->{chunks} }, $payload }
    elsif ($type == Cocaine::Worker::END_) { $state->{ended} = 1 }
    elsif ($type == Cocaine::Worker::ERROR) {
        my $error = eval { Cocaine::Worker::_json_decode($payload) };
        $state->{error} = ref $error eq 'HASH' && defined $error->{code}
            ? $error : { code => 'internal', message => 'the engine sent a malformed ERROR' };
    }
}

# Sends one request and waits for its answer: $on_chunk gets each answer chunk as it arrives.
# $args is the JSON text of the request's args; $body a string, an array ref of strings or undef.
sub request {
    my ($req, $service, $args, $body, $on_chunk) = @_;
    if ($Cocaine::Worker::PROTOCOL < 2) {
        die Cocaine::ServiceError->new('unsupported',
            "$service: services need worker protocol version 2, and this engine speaks version 1 (COCAINE_PROTOCOL)");
    }
    my @parts = _body_parts($service, $body);
    if (my $code = $req->{cancelled}) { die Cocaine::ServiceError->new($code, "$service: the invocation was cancelled ($code)") }
    my $channel = Cocaine::Worker::WORKER_CHANNEL_BASE + ++$NEXT;
    my $state = $OPEN{$channel} = { chunks => [], ended => 0, error => undef };
    my $ok = eval {
        Cocaine::Worker::_send(Cocaine::Worker::SERVICE, $channel,
            sprintf('{"service":%s,"parent":%d,"args":%s}', Cocaine::Worker::_json_string($service), $req->{channel}, $args));
        for my $part (@parts) {
            for (my $offset = 0; $offset < length $part; $offset += Cocaine::Worker::MAX_PAYLOAD) {
                Cocaine::Worker::_send(Cocaine::Worker::CHUNK, $channel, substr($part, $offset, Cocaine::Worker::MAX_PAYLOAD));
            }
        }
        Cocaine::Worker::_send(Cocaine::Worker::END_, $channel, '');
        for (;;) {
            if (my $code = $req->{cancelled}) { die Cocaine::ServiceError->new($code, "$service: the invocation was cancelled ($code)") }
            $on_chunk->(shift @{ $state->{chunks} }) while @{ $state->{chunks} };
            return 1 if $state->{ended};
            if (my $error = $state->{error}) { die Cocaine::ServiceError->new("$error->{code}", $error->{message} // $error->{code}) }
            Cocaine::Worker::_pump(Cocaine::Worker::_until_due());
        }
    };
    my $error = $@;
    delete $OPEN{$channel};
    return if $ok;
    # Given up while the engine still serves it (a cancel, the callback died): cancel the callee.
    unless ($state->{ended} || $state->{error}) {
        Cocaine::Worker::_send_error($channel, 'cancelled', "the handler gave up its $service request");
    }
    die $error;
}

# The answer of a request whose answer is JSON (emit, storage).
sub json_request {
    my ($req, $service, $args, $body) = @_;
    my $answer = '';
    request($req, $service, $args, $body, sub { $answer .= $_[0] });
    my $value = eval { Cocaine::Worker::_json_decode($answer) };
    die Cocaine::ServiceError->new('internal', "$service: the engine's answer is not a JSON object") unless ref $value eq 'HASH';
    return $value;
}

sub _body_parts {
    my ($service, $body) = @_;
    return () unless defined $body;
    my @parts = ref $body eq 'ARRAY' ? @$body : ($body);
    for my $part (@parts) {
        _fail("$service: the body is a string (bytes or characters) or an array ref of strings, not a " . ref($part) . ' ref')
            if ref $part && !(ref $part ne 'ARRAY' && overload::Method($part, '""'));
        $part = defined $part ? "$part" : '';
        utf8::encode($part) if utf8::is_utf8($part);
    }
    return grep { length } @parts;
}

# Checks an options hash against the names it may have; returns it (or {}).
sub options {
    my ($what, $options, @names) = @_;
    return {} unless defined $options;
    _fail("$what: the options are a hash ref, not " . (ref $options ? 'a ' . ref($options) . ' ref' : "'$options'")) unless ref $options eq 'HASH';
    my %known = map { $_ => 1 } @names;
    for my $name (sort keys %$options) {
        _fail("$what: unknown option '$name' (known: " . join(', ', @names) . ')') unless $known{$name};
    }
    return $options;
}

sub target {
    my ($what, $target) = @_;
    _fail("$what: target must be 'app\@event'") unless defined $target && !ref $target && $target =~ /\S/;
    return Cocaine::Worker::_json_string($target);
}

sub string {
    my ($what, $value) = @_;
    _fail("$what must be a string") unless defined $value && !ref $value;
    return Cocaine::Worker::_json_string("$value");
}

# Seconds (fractions allowed) as JSON milliseconds.
sub milliseconds {
    my ($what, $seconds) = @_;
    _fail("$what must be a number of seconds >= 0, not '" . ($seconds // 'undef') . "'")
        unless defined $seconds && !ref $seconds && $seconds =~ /^(?:\d+(?:\.\d*)?|\.\d+)$/;
    return sprintf('%d', $seconds * 1000 + 0.5);
}

sub count {
    my ($what, $value) = @_;
    _fail("$what must be a whole number >= 0, not '" . ($value // 'undef') . "'") unless defined $value && !ref $value && $value =~ /^\d+$/;
    return sprintf('%d', $value);
}

sub headers {
    my ($what, $headers) = @_;
    _fail("$what.headers must be a hash ref of strings") unless ref $headers eq 'HASH';
    return '{' . join(',', map { Cocaine::Worker::_json_string($_) . ':' . string("$what.headers.$_", $headers->{$_}) } sort keys %$headers) . '}';
}

# A JSON object from name => JSON text pairs; pairs whose text is undef are left out.
sub object {
    my @pairs = @_;
    my @members;
    while (my ($name, $json) = splice @pairs, 0, 2) {
        push @members, Cocaine::Worker::_json_string($name) . ":$json" if defined $json;
    }
    return '{' . join(',', @members) . '}';
}

# A LOG field's value: strings, numbers, booleans (\1, \0, JSON::PP::true) and null as they
# are; any other reference as its JSON text (fields are a flat object).
sub field {
    my ($value) = @_;
    return 'null' unless defined $value;
    if (my $kind = ref $value) {
        return $$value ? 'true' : 'false' if $kind eq 'SCALAR' && defined $$value && $$value =~ /^[01]$/;
        return $value ? 'true' : 'false' if $kind eq 'JSON::PP::Boolean';
        return Cocaine::Worker::_json_string(Cocaine::Worker::_json()->encode($value)) if $kind eq 'HASH' || $kind eq 'ARRAY';
        return Cocaine::Worker::_json_string("$value");
    }
    # A number stays a number (JSON::Tiny's test: a numeric value whose string form is its own).
    no warnings 'numeric';
    return $value if length((my $dummy = '') & $value) && 0 + $value eq $value && $value * 0 == 0;
    return Cocaine::Worker::_json_string($value);
}

# One LOG frame on the invocation's channel; with a version-1 engine a line on stderr instead.
sub log_record {
    my ($req, $level, $message, $fields) = @_;
    $message = defined $message ? "$message" : '';
    _fail("log->$level: fields must be a hash ref, not " . (ref $fields ? 'a ' . ref($fields) . ' ref' : "'$fields'"))
        if defined $fields && ref $fields ne 'HASH';
    my $json = $fields && %$fields
        ? '{' . join(',', map { Cocaine::Worker::_json_string($_) . ':' . field($fields->{$_}) } sort keys %$fields) . '}'
        : undef;
    if ($Cocaine::Worker::PROTOCOL < 2) {
        print STDERR "[$level] $message" . (defined $json ? " $json" : '') . "\n";
        return;
    }
    Cocaine::Worker::_send(Cocaine::Worker::LOG, $req->{channel},
        object(level => Cocaine::Worker::_json_string($level), message => Cocaine::Worker::_json_string($message), fields => $json));
    return;
}

package Cocaine::Request;

# The callee's whole result (bytes).
sub call {
    my ($self, $target, $body, $options) = @_;
    my @result;
    $self->call_each($target, $body, $options, sub { push @result, $_[0] });
    return join '', @result;
}

# Calls $callback->($chunk) for each chunk of the callee's result as it arrives.
sub call_each {
    my $callback = pop;
    my ($self, $target, $body, $options) = @_;
    Cocaine::Worker::Services::_fail('call_each: the last argument is a sub { my ($chunk) = @_; ... }') unless ref $callback eq 'CODE';
    $options = Cocaine::Worker::Services::options('call', $options, qw(headers timeout routing_key broadcast));
    my $args = Cocaine::Worker::Services::object(
        target => Cocaine::Worker::Services::target('call', $target),
        headers => defined $options->{headers} ? Cocaine::Worker::Services::headers('call', $options->{headers}) : undef,
        timeout_ms => defined $options->{timeout} ? Cocaine::Worker::Services::milliseconds('call: timeout', $options->{timeout}) : undef,
        routing_key => defined $options->{routing_key} ? Cocaine::Worker::_json_string("$options->{routing_key}") : undef,
        broadcast => $options->{broadcast} ? 'true' : undef,
    );
    Cocaine::Worker::Services::request($self, 'call', $args, $body, $callback);
    return;
}

# Queues an event durably: { id => ..., duplicate => 1/0 } once it is.
sub emit {
    my ($self, $target, $body, $options) = @_;
    $options = Cocaine::Worker::Services::options('emit', $options, qw(headers delay id));
    my $args = Cocaine::Worker::Services::object(
        target => Cocaine::Worker::Services::target('emit', $target),
        headers => defined $options->{headers} ? Cocaine::Worker::Services::headers('emit', $options->{headers}) : undef,
        delay_ms => defined $options->{delay} ? Cocaine::Worker::Services::milliseconds('emit: delay', $options->{delay}) : undef,
        id => defined $options->{id} ? Cocaine::Worker::Services::string('emit: id', $options->{id}) : undef,
    );
    my $answer = Cocaine::Worker::Services::json_request($self, 'emit', $args, $body);
    return { id => $answer->{id}, duplicate => $answer->{duplicate} ? 1 : 0 };
}

sub storage { return $_[0]{storage} //= bless { req => $_[0] }, 'Cocaine::Storage' }
sub log { return $_[0]{log} //= bless { req => $_[0] }, 'Cocaine::Log' }

package Cocaine::Storage;
# The app's own key-value store (docs/app-store.md), through the invocation's engine.

sub _args {
    my ($what, $key, @rest) = @_;
    return Cocaine::Worker::Services::object(method => Cocaine::Worker::_json_string($what),
        key => Cocaine::Worker::Services::string("storage->$what: key", $key), @rest);
}

sub _revision {
    my ($what, $options) = @_;
    $options = Cocaine::Worker::Services::options("storage->$what", $options, 'revision');
    return defined $options->{revision} ? Cocaine::Worker::Services::count("storage->$what: revision", $options->{revision}) : undef;
}

# ($value, $revision), or the empty list when the key does not exist; in scalar context the value.
sub get {
    my ($self, $key) = @_;
    my $answer = Cocaine::Worker::Services::json_request($self->{req}, 'storage', _args('get', $key));
    return wantarray ? () : undef unless $answer->{found};
    require MIME::Base64;
    my $value = MIME::Base64::decode_base64($answer->{value} // '');
    return wantarray ? ($value, $answer->{revision}) : $value;
}

# Stores $value (bytes) and returns its new revision; { revision => N } makes it a
# compare-and-set (0: the key must not exist), failing with revision_mismatch.
sub put {
    my ($self, $key, $value, $options) = @_;
    my $args = _args('put', $key, revision => _revision('put', $options));
    Cocaine::Worker::Services::_fail('storage->put: value must be a string (bytes), not undef') unless defined $value;
    return Cocaine::Worker::Services::json_request($self->{req}, 'storage', $args, $value)->{revision};
}

# 1 if the key was deleted, 0 if it did not exist.
sub delete {
    my ($self, $key, $options) = @_;
    my $args = _args('delete', $key, revision => _revision('delete', $options));
    return Cocaine::Worker::Services::json_request($self->{req}, 'storage', $args)->{deleted} ? 1 : 0;
}

# (\@keys, $next): $next is the cursor for { after => $next }, undef on the last page. In scalar
# context the keys.
sub list {
    my ($self, $prefix, $options) = @_;
    $options = Cocaine::Worker::Services::options('storage->list', $options, qw(limit after));
    my $args = Cocaine::Worker::Services::object(
        method => '"list"',
        prefix => defined $prefix ? Cocaine::Worker::Services::string('storage->list: prefix', $prefix) : undef,
        limit => defined $options->{limit} ? Cocaine::Worker::Services::count('storage->list: limit', $options->{limit}) : undef,
        after => defined $options->{after} ? Cocaine::Worker::Services::string('storage->list: after', $options->{after}) : undef,
    );
    my $answer = Cocaine::Worker::Services::json_request($self->{req}, 'storage', $args);
    my $keys = ref $answer->{keys} eq 'ARRAY' ? $answer->{keys} : [];
    return wantarray ? ($keys, $answer->{next}) : $keys;
}

package Cocaine::Log;
# Structured log records of the invocation: $req->log->info($message, { field => value }).

for my $level (qw(debug info warn error)) {
    no strict 'refs';
    *{"Cocaine::Log::$level"} = sub { Cocaine::Worker::Services::log_record($_[0]{req}, $level, $_[1], $_[2]) };
}

1;
