# The request and response objects a handler gets (plugins/perl/README.md), for
# Cocaine::Worker (loaded by it; apps never load this file themselves).
use strict;
use warnings;

package Cocaine::Cancelled;
# Thrown by body reads and writes once the call was cancelled; the runtime swallows it.
use overload '""' => sub { "the call was cancelled ($_[0]{code})\n" }, fallback => 1;

package Cocaine::Request;

sub event { $_[0]{event} }
sub headers { $_[0]{headers} }
sub deadline { $_[0]{deadline} }

# 'cancelled' or 'deadline' once the call was cancelled, else undef.
sub cancelled {
    my ($self) = @_;
    Cocaine::Worker::_pump(0) unless $self->{cancelled};
    return $self->{cancelled};
}

sub _check {
    my ($self) = @_;
    die bless({ code => $self->{cancelled} }, 'Cocaine::Cancelled') if $self->{cancelled};
}

# Calls $callback->($chunk) for each body chunk, as it arrives, until the body ends. After
# chunks/body it goes over the chunks they kept; on its own it keeps nothing (a large body is
# never held whole), so body/chunks cannot be used after it.
sub each_chunk {
    my ($self, $callback) = @_;
    if ($self->{chunks}) { $callback->($_) for @{ $self->{chunks} }; return }
    $self->{streamed} = 1;
    for (;;) {
        $self->_check;
        while (@{ $self->{pending} }) { $callback->(shift @{ $self->{pending} }) }
        return if $self->{ended};
        Cocaine::Worker::_pump(Cocaine::Worker::_until_due());
    }
}

# The body chunks as received (an array ref of bytes), once the body has ended.
sub chunks {
    my ($self) = @_;
    return $self->{chunks} if $self->{chunks};
    die "the body was already read by each_chunk: chunks and body are not kept then\n" if $self->{streamed};
    my @chunks;
    $self->each_chunk(sub { push @chunks, $_[0] });
    return $self->{chunks} = \@chunks;
}

# The whole body (bytes), once it has ended.
sub body {
    my ($self) = @_;
    return $self->{body} //= join '', @{ $self->chunks };
}

sub json { Cocaine::Worker::_json()->decode($_[0]->body) }

# Sleeps up to $seconds, returning early (with the cancel code) when the call is cancelled.
sub sleep {
    my ($self, $seconds) = @_;
    my $until = Time::HiRes::time() + $seconds;
    until ($self->{cancelled}) {
        my $left = $until - Time::HiRes::time();
        return undef if $left <= 0;
        my $wait = Cocaine::Worker::_until_due();
        Cocaine::Worker::_pump($left < $wait ? $left : $wait);
    }
    return $self->{cancelled};
}

package Cocaine::Response;

# Sends one result chunk (bytes; a character string is sent as UTF-8). Returns $res.
sub write {
    my ($self, $data) = @_;
    my $req = $self->{req};
    Cocaine::Worker::_pump(0);
    $req->_check;
    if (my $kind = ref $data) {
        # An object that stringifies is sent as its string; any other reference is a mistake
        # ("HASH(0x55d0...)" is nobody's result).
        require overload;
        die "a chunk must be a string (bytes or characters), not a $kind ref\n" unless overload::Method($data, '""');
        $data = "$data";
    }
    $self->{wrote} = 1;
    return $self unless defined $data;
    utf8::encode($data) if utf8::is_utf8($data);
    my $length = length $data;
    if ($length <= Cocaine::Worker::MAX_PAYLOAD) {
        Cocaine::Worker::_send(Cocaine::Worker::CHUNK, $self->{channel}, $data) if $length;
    } else {
        # Larger than a frame may carry: several CHUNK frames, in order.
        for (my $offset = 0; $offset < $length; $offset += Cocaine::Worker::MAX_PAYLOAD) {
            Cocaine::Worker::_send(Cocaine::Worker::CHUNK, $self->{channel}, substr($data, $offset, Cocaine::Worker::MAX_PAYLOAD));
        }
    }
    return $self;
}

1;
