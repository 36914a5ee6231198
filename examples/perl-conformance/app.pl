# The events every language's conformance app implements (test/conformance/kit.ts drives them).
use strict;
use warnings;
use Time::HiRes ();
use Cocaine::Worker;

my $calls = 0;

handler echo => sub {
    my ($req) = @_;
    return $req->body;
};

handler stream => sub {
    my ($req) = @_;
    my $count = $req->body || 0;
    my $i = 0;
    return sub { $i < $count ? $i++ : undef };
};

# Each body chunk is answered as it arrives, before the body has ended.
handler upper => sub {
    my ($req, $res) = @_;
    $req->each_chunk(sub { $res->write(uc $_[0]) });
    return;
};

handler big => sub {
    my ($req) = @_;
    my $size = $req->body;
    my $pattern = join '', map { chr } 0 .. 250;
    return substr($pattern x (int($size / 251) + 1), 0, $size);
};

handler fail => sub {
    my ($req) = @_;
    die 'boom: ' . $req->body . "\n";
};

handler counter => sub {
    return ++$calls;
};

# Sleeps in 10 ms steps; $req->cancelled reads what the engine sent (and heartbeats when due),
# so a cancel stops it within a step.
handler sleep => sub {
    my ($req) = @_;
    my $until = Time::HiRes::time() + ($req->body || 0) / 1000;
    while (Time::HiRes::time() < $until) {
        if (my $code = $req->cancelled) {
            print STDERR "sleep cancelled ($code)\n";
            return;
        }
        Time::HiRes::sleep(0.01);
    }
    return 'slept';
};

handler crash => sub {
    print STDERR "about to crash\n";
    require POSIX;  # here, not at the top: loading POSIX would double the worker's start-up time
    POSIX::_exit(3);
};

handler hang => sub {
    kill 'STOP', $$;
    return;
};

handler log => sub {
    print "hello stdout\n";
    print STDERR "hello stderr\n";
    return 'ok';
};

handler concurrent => sub {
    Time::HiRes::sleep(0.2);
    return 'done';
};

# The request headers as a JSON object (a hash result is sent as JSON).
handler headers => sub {
    my ($req) = @_;
    return { %{ $req->headers } };
};

# Services (protocol version 2; the kit's "services" group). A service error dies with a
# Cocaine::ServiceError, which the caller sees as "<code>: <message>".

# "<app@event> <payload>": calls the target with the payload and answers its result.
handler relay => sub {
    my ($req) = @_;
    my ($target, $payload) = split / /, $req->body, 2;
    return $req->call($target, $payload // '');
};

# "<app@event> <id or -> <payload>": queues the event; answers "<id> <duplicate>".
handler emit => sub {
    my ($req) = @_;
    my ($target, $id, $payload) = split / /, $req->body, 3;
    my $queued = $req->emit($target, $payload // '', $id eq '-' ? {} : { id => $id });
    return "$queued->{id} " . ($queued->{duplicate} ? 'true' : 'false');
};

# The app's storage, one command per call (see examples/node-conformance/index.js).
handler kv => sub {
    my ($req) = @_;
    my ($command, $key, @rest) = split / /, $req->body;
    my $storage = $req->storage;
    if ($command eq 'put') {
        return '' . $storage->put($key, $rest[0], defined $rest[1] ? { revision => 0 + $rest[1] } : {});
    }
    if ($command eq 'get') {
        my ($value, $revision) = $storage->get($key);
        return defined $revision ? "$revision $value" : 'none';
    }
    if ($command eq 'delete') {
        return $storage->delete($key, defined $rest[0] ? { revision => 0 + $rest[0] } : {}) ? 'deleted' : 'missing';
    }
    if ($command eq 'list') {
        my ($keys, $next) = $storage->list($key, { limit => 0 + $rest[0], defined $rest[1] ? (after => $rest[1]) : () });
        return join(',', @$keys) . ' next=' . ($next // '');
    }
    die "unknown kv command \"$command\"\n";
};

# "<level> <message>": one structured log record with the field kit=conformance.
handler note => sub {
    my ($req) = @_;
    my ($level, $message) = split / /, $req->body, 2;
    $req->log->$level($message, { kit => 'conformance' });
    return 'ok';
};
