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
