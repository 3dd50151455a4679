# Allocation-heavy Perl workload for the binmalloc benchmark: build a big
# hash of strings and arrays, sort it, rebuild part of it, print a checksum.
# Perl on Debian uses the system malloc, so every SV goes through the
# allocator under test.
#
# usage: perl perl_hash.pl [keys]       default 300000
use strict;
use warnings;

my $n = $ARGV[0] // 300000;
my %h;
for my $i (0 .. $n - 1) {
    my $k = sprintf("key%08d", ($i * 7919) % $n);
    $h{$k} = [ $i, "value-" . ($i % 1000) . "-" . ($i * 31 % 977), $i % 7 ];
}
# sort by value string, then key (decorate, plain string sort, undecorate)
my @sorted = map { (split /\0/, $_)[1] } sort map { $h{$_}[1] . "\0" . $_ } keys %h;
my $sum = 0;
for my $j (0 .. $#sorted) {
    $sum = ($sum * 31 + $h{ $sorted[$j] }[0] + $j) % 4294967291;
}
# delete most entries, then add new ones with longer values
for my $k (@sorted) {
    delete $h{$k} if $h{$k}[2] % 3;
}
for my $i (0 .. $n / 2) {
    $h{"new" . $i} = join(",", map { $_ * $i } 1 .. 8);
}
my $total = 0;
for my $k (sort keys %h) {
    my $v = $h{$k};
    $total = ($total + (ref $v ? $v->[0] : length $v)) % 4294967291;
}
printf "perl keys=%d remaining=%d checksum=%d-%d\n", $n, scalar(keys %h), $sum, $total;
